"""Where faster-whisper's time goes on short utterances: the log-mel front
end, the encoder alone and the whole call, per file, for the whisper.cpp
comparison (transcribe/README.md, "Engine time").

Each file is transcribed as the fixture serves Earshot (server.Fixture:
greedy, the fallback ladder, word timestamps, language en) and timed whole;
then its features are computed and its 30 s window encoded on their own,
timed apart (faster-whisper pads every window to 30 s, so the encoder's
cost does not depend on the utterance's length). The rest of the call is
decoding, word alignment and Python. The first file is run once untimed
(warm-up).

Usage: phases.py --model-dir DIR [--compute-type int8] [--threads 2] FILE...
Prints one JSON object per file: {"file", "seconds", "mel_s", "encode_s",
"call_s"}.
"""

import argparse
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import Fixture  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    import ctranslate2
    import numpy as np
    from faster_whisper.audio import decode_audio
    from faster_whisper.transcribe import pad_or_trim

    fixture = Fixture(args.model_dir, "tiny.en", args.threads, args.compute_type)
    model = fixture.model
    fields = {
        "language": ["en"],
        "temperature": ["0"],
        "response_format": ["verbose_json"],
        "timestamp_granularities[]": ["word", "segment"],
    }
    for i, path in enumerate([args.files[0]] + args.files):
        with open(path, "rb") as f:
            data = f.read()
        t0 = time.monotonic()
        fixture.transcribe(data, fields)
        call = time.monotonic() - t0

        audio = decode_audio(io.BytesIO(data), sampling_rate=16000)
        t0 = time.monotonic()
        features = model.feature_extractor(audio)
        mel = time.monotonic() - t0
        window = np.ascontiguousarray(np.expand_dims(pad_or_trim(features), 0))
        t0 = time.monotonic()
        out = model.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=True)
        np.asarray(out)
        encode = time.monotonic() - t0
        if i == 0:
            continue
        print(json.dumps({"file": path, "seconds": len(audio) / 16000, "mel_s": mel, "encode_s": encode, "call_s": call}), flush=True)


if __name__ == "__main__":
    main()

"""Offline faster-whisper transcripts for the whisper.cpp comparison.

Runs the Whisper fixture's own decoding (server.Fixture.transcribe: the
same settings the fixture serves Earshot's HTTP engine with) on audio files,
in process, with a compute type of choice: the fixture serves int8, whose
quantisation changes a few words, while whisper.cpp computes with the
float16 weights; float32 is the like-for-like reference.

--front-end openai pads the audio the way OpenAI's Whisper and whisper.cpp
do: the log-mel spectrogram is computed over the audio followed by 30 s of
silence, so the 30 s window's frames past the speech are silence. The
fixture (faster-whisper 1.x) pads the audio with 160 samples only and fills
the rest of the window with zeros in log-mel space, which is not silence:
on a short utterance the decoder sees something else past the speech, and
greedy decoding picks other words on a few lines. Only the window's
content differs; decoding is the fixture's, and only the audio's own
duration is transcribed (clip_timestamps).

Usage: reference.py --model-dir DIR [--compute-type float32] [--threads 2]
                    [--front-end faster-whisper|openai] FILE...
Prints one JSON object per file: {"file", "engine_seconds", "result"} where
result is the fixture's verbose_json answer (word timestamps, language en,
temperature 0 with the fallback ladder).
"""

import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import Fixture  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--front-end", choices=("faster-whisper", "openai"), default="faster-whisper")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    fixture = Fixture(args.model_dir, "tiny.en", args.threads, args.compute_type)
    transcribe = fixture.model.transcribe
    if args.front_end == "openai":
        _openai_front_end(fixture.model)
    fields = {
        "language": ["en"],
        "temperature": ["0"],
        "response_format": ["verbose_json"],
        "timestamp_granularities[]": ["word", "segment"],
    }
    for path in args.files:
        with open(path, "rb") as f:
            audio = f.read()
        if args.front_end == "openai":
            seconds = _wav_seconds(audio)
            fixture.model.transcribe = functools.partial(transcribe, clip_timestamps=[0.0, seconds])
        t0 = time.monotonic()
        _, body = fixture.transcribe(audio, fields)
        elapsed = time.monotonic() - t0
        print(json.dumps({"file": path, "engine_seconds": elapsed, "result": json.loads(body)}), flush=True)


def _openai_front_end(model):
    """Makes model's 30 s windows end in silence, as OpenAI's and
    whisper.cpp's do: the features are computed over the audio and 30 s of
    zeros (so silence has its log-mel value, the spectrogram's floor), and
    a window shorter than 30 s is filled with that floor instead of
    zeros."""
    import numpy as np

    import faster_whisper.transcribe as fwt

    extractor = model.feature_extractor
    extract = extractor.__call__
    floor = {}

    def padded(waveform, padding=160, chunk_length=None):
        features = extract(waveform, padding=extractor.n_samples, chunk_length=chunk_length)
        floor["value"] = float(features.min())
        return features

    def pad_or_trim(array, length=3000, *, axis=-1):
        if array.shape[axis] > length:
            array = array.take(indices=range(length), axis=axis)
        if array.shape[axis] < length:
            widths = [(0, 0)] * array.ndim
            widths[axis] = (0, length - array.shape[axis])
            array = np.pad(array, widths, constant_values=floor["value"])
        return array

    model.feature_extractor = _Calls(extractor, padded)
    fwt.pad_or_trim = pad_or_trim


class _Calls:
    """The feature extractor with another __call__ (Python looks special
    methods up on the type, so patching the instance is not enough)."""

    def __init__(self, inner, call):
        self._inner, self._call = inner, call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _wav_seconds(data):
    """Duration of a 16-bit PCM WAV file."""
    import io
    import wave

    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


if __name__ == "__main__":
    main()

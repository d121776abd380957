"""The Whisper fixture: an OpenAI-compatible transcription server for tests.

Serves POST /v1/audio/transcriptions (multipart form, as OpenAI's API) with
faster-whisper on the tiny.en weights that testbed/whisper.sh installs, and
GET /health. Loopback only; one model call at a time (the model is not
thread-safe and the machine has two cores).

Form fields: file (any container PyAV decodes: Ogg/Opus, WAV, ...), model
(accepted and ignored: there is one model), language (optional; detected when
absent), prompt, temperature, response_format (json | text | verbose_json),
timestamp_granularities[] (segment, word).

verbose_json follows OpenAI's shape (task, language, duration, text,
segments[], words[]) plus language_probability; language is the ISO code
faster-whisper reports ("en"), not OpenAI's English name.

Voice activity detection is off on purpose: Earshot runs its own VAD and the
fixture must transcribe exactly the audio it is sent.
"""

import argparse
import email.parser
import email.policy
import io
import json
import logging
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The weights come from a local folder; never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import ctranslate2  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402

MAX_BODY = 100 * 1024 * 1024
FORMATS = ("json", "text", "verbose_json")
GRANULARITIES = ("segment", "word")
# faster-whisper's (and OpenAI's) fallback ladder when temperature is 0.
FALLBACK_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]

log = logging.getLogger("whisper-fixture")


class BadRequest(Exception):
    """A client error, answered with 400 and an OpenAI-style error body."""


def parse_multipart(content_type, body):
    """Returns ({field: [str]}, {field: (filename, bytes)}) from a
    multipart/form-data body, using the stdlib email parser (cgi is gone)."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("Content-Type must be multipart/form-data")
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise BadRequest("malformed multipart body")
    fields, files = {}, {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
        else:
            charset = part.get_content_charset() or "utf-8"
            fields.setdefault(name, []).append(payload.decode(charset, errors="replace"))
    return fields, files


def first(fields, name, default=None):
    values = fields.get(name)
    return values[0].strip() if values else default


class Fixture:
    """Owns the model and serialises calls to it."""

    def __init__(self, model_dir, model_name, threads, compute_type):
        self.model_dir = model_dir
        self.model_name = model_name
        self.lock = threading.Lock()
        self.model = WhisperModel(
            model_dir,
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=1,
            local_files_only=True,
        )

    def transcribe(self, audio, fields):
        fmt = first(fields, "response_format", "json") or "json"
        if fmt not in FORMATS:
            raise BadRequest(f"response_format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
        grans = set()
        for key in ("timestamp_granularities[]", "timestamp_granularities"):
            for value in fields.get(key, []):
                for g in value.replace(",", " ").split():
                    if g not in GRANULARITIES:
                        raise BadRequest(f"timestamp_granularities: {g!r} is not one of segment, word")
                    grans.add(g)
        language = first(fields, "language") or None
        prompt = first(fields, "prompt") or None
        temp_field = first(fields, "temperature")
        if temp_field in (None, ""):
            temperature = FALLBACK_TEMPERATURES
        else:
            try:
                t = float(temp_field)
            except ValueError:
                raise BadRequest(f"temperature {temp_field!r} is not a number") from None
            if not 0.0 <= t <= 1.0:
                raise BadRequest("temperature must be between 0 and 1")
            temperature = FALLBACK_TEMPERATURES if t == 0.0 else t
        words_wanted = "word" in grans

        with self.lock:
            # The fallback ladder samples at temperatures above 0: seeded
            # per request, the same audio always gets the same text, so
            # tests can compare the live pipeline with an offline replay
            # of the same audio by the same engine.
            ctranslate2.set_random_seed(0)
            segments, info = self.model.transcribe(
                io.BytesIO(audio),
                language=language,
                task="transcribe",
                beam_size=1,
                best_of=1,
                temperature=temperature,
                initial_prompt=prompt,
                word_timestamps=words_wanted,
                vad_filter=False,
            )
            # The segments are a lazy generator: decode inside the lock.
            segments = list(segments)

        text = "".join(s.text for s in segments).strip()
        if fmt == "text":
            return "text/plain; charset=utf-8", (text + "\n").encode()
        if fmt == "json":
            return "application/json", json.dumps({"text": text}).encode()
        out = {
            "task": "transcribe",
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "duration": round(float(info.duration), 3),
            "text": text,
            "segments": [
                {
                    "id": i,  # OpenAI counts from 0, faster-whisper from 1
                    "seek": s.seek,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "tokens": list(s.tokens),
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                }
                for i, s in enumerate(segments)
            ],
        }
        if words_wanted:
            out["words"] = [
                {
                    "word": w.word.strip(),
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "probability": round(w.probability, 4),
                }
                for s in segments
                for w in (s.words or [])
            ]
        return "application/json", json.dumps(out, ensure_ascii=False).encode()


def make_handler(fixture):
    class Handler(BaseHTTPRequestHandler):
        server_version = "earshot-whisper-fixture/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request, no content
            log.info("%s %s", self.address_string(), fmt % args)

        def send_body(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_error_json(self, status, message, kind="invalid_request_error"):
            body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})
            self.send_body(status, "application/json", body.encode())

        def do_GET(self):
            if self.path == "/health":
                self.send_body(HTTPStatus.OK, "application/json",
                               json.dumps({"status": "ok", "model": fixture.model_name}).encode())
            elif self.path == "/v1/models":
                self.send_body(HTTPStatus.OK, "application/json", json.dumps(
                    {"object": "list", "data": [{"id": fixture.model_name, "object": "model"}]}).encode())
            else:
                self.send_error_json(HTTPStatus.NOT_FOUND, f"no route for GET {self.path}")

        do_HEAD = do_GET

        def do_POST(self):
            if self.path.split("?", 1)[0] != "/v1/audio/transcriptions":
                self.send_error_json(HTTPStatus.NOT_FOUND, f"no route for POST {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.send_error_json(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
                return
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                self.send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
                return
            body = self.rfile.read(length)
            started = time.monotonic()
            try:
                fields, files = parse_multipart(self.headers.get("Content-Type", ""), body)
                if "file" not in files or not files["file"][1]:
                    raise BadRequest("the form has no file (field 'file')")
                content_type, out = fixture.transcribe(files["file"][1], fields)
            except BadRequest as e:
                self.send_error_json(HTTPStatus.BAD_REQUEST, str(e))
                return
            except Exception as e:  # undecodable audio and the like
                log.exception("transcription failed")
                self.send_error_json(HTTPStatus.BAD_REQUEST,
                                     f"could not transcribe the file: {type(e).__name__}: {e}")
                return
            log.info("transcribed %d bytes in %.2fs", len(files["file"][1]), time.monotonic() - started)
            self.send_body(HTTPStatus.OK, content_type, out)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--model-dir", required=True, help="CTranslate2 Whisper model folder")
    ap.add_argument("--model-name", default="tiny.en", help="the name /health and /v1/models report")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="int8")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.monotonic()
    fixture = Fixture(args.model_dir, args.model_name, args.threads, args.compute_type)
    log.info("loaded %s in %.1fs", args.model_dir, time.monotonic() - t0)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(fixture))
    server.daemon_threads = True
    log.info("listening on http://%s:%d", args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

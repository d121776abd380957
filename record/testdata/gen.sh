#!/usr/bin/env bash
# Regenerates the Ogg/Opus fixtures the record tests replay as RTP.
# Needs sox, espeak-ng and opusenc (Debian: sox espeak-ng opus-tools).
#
# speech_tones.opus: 12 s mono at 48 kHz, 20 ms packets, 32 kbit/s:
# synthetic speech with 1 kHz tones (150 ms) whose onsets sit at
# 3.5 s, 7.5 s and 11.0 s of the source WAV (tones_test.go relies on it).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # say <file> <text>
  espeak-ng -v en-us -s 170 -w "$tmp/raw.wav" "$2"
  sox "$tmp/raw.wav" -r 48000 -c 1 -b 16 "$1"
}
say "$tmp/s1.wav" "The quick brown fox jumps over the lazy dog."
say "$tmp/s2.wav" "Earshot keeps an exact record of every speaker."
say "$tmp/s3.wav" "Tones mark the time."
sox -n -r 48000 -c 1 -b 16 "$tmp/tone.wav" synth 0.15 sine 1000 vol 0.5

# place <in> <onset seconds> <out>: pad to start at onset, total 12 s.
place() { sox -V1 "$1" "$3" pad "$2" 12 trim 0 12; }
place "$tmp/s1.wav" 0.5 "$tmp/a.wav"
place "$tmp/tone.wav" 3.5 "$tmp/b.wav"
place "$tmp/s2.wav" 4.2 "$tmp/c.wav"
place "$tmp/tone.wav" 7.5 "$tmp/d.wav"
place "$tmp/s3.wav" 8.2 "$tmp/e.wav"
place "$tmp/tone.wav" 11.0 "$tmp/f.wav"
sox -m "$tmp"/[a-f].wav "$tmp/mix.wav" norm -3
opusenc --quiet --bitrate 32 --framesize 20 --comp 10 --serial 1 "$tmp/mix.wav" speech_tones.opus

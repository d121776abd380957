package crypt

import (
	"bytes"
	"io"
	"testing"
)

// Throughput of the object format on one core, in memory (no store): what
// encryption adds to every segment upload and read. Reported as
// crypt_mb_per_s (plaintext MB per second).
func BenchmarkObjectFormat(b *testing.B) {
	dek := randBytes(b, 32)
	for _, size := range []int{128 << 10, 8 << 20} { // a 30 s segment; an export
		plain := randBytes(b, size)
		raw := encryptBytes(b, dek, "audio/k", plain)
		name := "128KiB"
		if size > 1<<20 {
			name = "8MiB"
		}
		b.Run("Encrypt/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				enc, err := newEncrypter(dek, event0KeyID, "audio/k", bytes.NewReader(plain))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, enc); err != nil {
					b.Fatal(err)
				}
			}
			reportMBps(b, size)
		})
		b.Run("Decrypt/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				r := io.NopCloser(bytes.NewReader(raw))
				h, header, err := readHeader(r)
				if err != nil {
					b.Fatal(err)
				}
				d, err := newDecrypter(r, dek, header, h.prefix, "audio/k", int64(size), "")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, d); err != nil {
					b.Fatal(err)
				}
			}
			reportMBps(b, size)
		})
	}
}

// Sealing one audio.chunk-sized record (1 s of Opus, ~8 KB) with the
// Keyring, key cached: the per-event cost on the live path.
func BenchmarkKeyringSeal(b *testing.B) {
	k := newKeyring(b, newKEK(b), openLocal(b), 0)
	ref := Ref("room", "ses", "spk")
	msg := randBytes(b, 8<<10)
	if _, err := k.Seal(b.Context(), ref, msg, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := k.Seal(b.Context(), ref, msg, []byte("audio.chunk\x00evt_x")); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, len(msg))
}

func reportMBps(b *testing.B, size int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/s/1e6, "crypt_mb_per_s")
	}
}

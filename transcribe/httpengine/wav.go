package httpengine

import (
	"encoding/binary"
	"math"

	"github.com/earshot/earshot/transcribe"
)

// encodeWAV returns samples as a RIFF/WAVE file, 16-bit PCM mono at
// transcribe.AudioRate: the one audio format every OpenAI-compatible server
// reads without a codec library (whisper.cpp's server reads WAV only unless
// built with ffmpeg). Samples are clamped to [-1, 1]; NaN becomes 0.
func encodeWAV(samples []float32) []byte {
	const header = 44
	data := 2 * len(samples)
	b := make([]byte, header+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(header-8+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], transcribe.AudioRate)
	binary.LittleEndian.PutUint32(b[28:], transcribe.AudioRate*2) // byte rate
	binary.LittleEndian.PutUint16(b[32:], 2)                      // block align
	binary.LittleEndian.PutUint16(b[34:], 16)                     // bits per sample
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for i, s := range samples {
		v := float64(s)
		if math.IsNaN(v) {
			v = 0
		}
		v = math.Round(max(-1, min(1, v)) * 32767)
		binary.LittleEndian.PutUint16(b[header+2*i:], uint16(int16(v)))
	}
	return b
}

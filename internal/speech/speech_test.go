package speech

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkErr fails the test unless err is nil (want "") or contains want.
func checkErr(t *testing.T, op string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s: %v", op, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("%s = %v, want an error containing %q", op, err, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		items   []Item
		wantErr string
	}{
		{"empty script", nil, "empty script"},
		{"speech", []Item{{Kind: KindSpeech, Text: "hello"}}, ""},
		{"speech without text", []Item{{Kind: KindSpeech, Text: "  "}}, "without text"},
		{"voice that looks like a flag", []Item{{Kind: KindSpeech, Text: "hi", Voice: "-w"}}, "not a voice"},
		{"pause", []Item{{Kind: KindPause, DurMS: 10}}, ""},
		{"zero pause", []Item{{Kind: KindPause}}, "pause of 0 ms"},
		{"tone", []Item{{Kind: KindTone, FreqHz: 1000, DurMS: 100}}, ""},
		{"tone without frequency", []Item{{Kind: KindTone, DurMS: 100}}, "frequency"},
		{"loud tone", []Item{{Kind: KindTone, FreqHz: 440, DurMS: 100, GainDB: 7}}, "clip"},
		{"unknown kind", []Item{{Kind: "music"}}, "unknown kind"},
		{"bad gain", []Item{{Kind: KindSpeech, Text: "x", GainDB: -90}}, "gain"},
		{"second item reported", []Item{{Kind: KindPause, DurMS: 5}, {Kind: KindTone}}, "item 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "Validate", Validate(tc.items), tc.wantErr)
		})
	}
}

// The cue sheet's JSON shape is a contract with other tools and tests.
func TestCueSheetShape(t *testing.T) {
	s := CueSheet{DurationMS: 3000, Cues: []Cue{
		{Kind: KindSpeech, Text: "hello there", Voice: "en-us", StartMS: 0, EndMS: 1234},
		{Kind: KindPause, StartMS: 1234, EndMS: 1500},
		{Kind: KindTone, FreqHz: 1000, StartMS: 1500, EndMS: 3000},
	}}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"duration_ms":3000,"cues":[` +
		`{"kind":"speech","text":"hello there","voice":"en-us","start_ms":0,"end_ms":1234},` +
		`{"kind":"pause","start_ms":1234,"end_ms":1500},` +
		`{"kind":"tone","freq_hz":1000,"start_ms":1500,"end_ms":3000}]}`
	if string(got) != want {
		t.Fatalf("cue sheet JSON\n got %s\nwant %s", got, want)
	}
	back, err := ParseCues(got)
	if err != nil {
		t.Fatalf("ParseCues: %v", err)
	}
	if back.Speech() != "hello there" || len(back.Cues) != 3 || back.Cues[2].FreqHz != 1000 {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestParseCues(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", `{"duration_ms":10,"cues":[{"kind":"pause","start_ms":0,"end_ms":10}]}`, ""},
		{"no cues", `{"duration_ms":0,"cues":[]}`, ""},
		{"unknown field", `{"duration_ms":10,"cues":[],"extra":1}`, "unknown field"},
		{"unknown kind", `{"duration_ms":10,"cues":[{"kind":"noise","start_ms":0,"end_ms":1}]}`, "unknown kind"},
		{"past the end", `{"duration_ms":10,"cues":[{"kind":"pause","start_ms":0,"end_ms":11}]}`, "past"},
		{"overlap", `{"duration_ms":10,"cues":[{"kind":"pause","start_ms":0,"end_ms":5},{"kind":"pause","start_ms":4,"end_ms":6}]}`, "out of order"},
		{"end before start", `{"duration_ms":10,"cues":[{"kind":"pause","start_ms":5,"end_ms":4}]}`, "out of order"},
		{"negative duration", `{"duration_ms":-1,"cues":[]}`, "duration_ms"},
		{"trailing data", `{"duration_ms":0,"cues":[]} {}`, "trailing"},
		{"not json", `nope`, "parse cues"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCues([]byte(tc.in))
			checkErr(t, "ParseCues", err, tc.wantErr)
		})
	}
}

func TestReadCuesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clip.ogg.cues.json")
	if err := os.WriteFile(p, []byte(`{"duration_ms":5,"cues":[{"kind":"speech","text":"a","voice":"en-us","start_ms":0,"end_ms":5}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadCues(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Speech() != "a" || s.DurationMS != 5 {
		t.Fatalf("ReadCues = %+v", s)
	}
	if _, err := ReadCues(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("ReadCues of a missing file: no error")
	}
}

// wavBytes builds a WAV stream; dataSize overrides the data chunk's size
// field when non-negative.
func wavBytes(format uint16, channels, rate int, samples []int16, dataSize int64, extra ...[]byte) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(0))
	b.WriteString("WAVE")
	for _, e := range extra {
		b.Write(e)
	}
	b.WriteString("fmt ")
	if format == 0xFFFE {
		le(uint32(40))
	} else {
		le(uint32(16))
	}
	le(format)
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * 2))
	le(uint16(channels * 2))
	le(uint16(16))
	if format == 0xFFFE {
		le(uint16(22))            // cbSize
		le(uint16(16))            // valid bits
		le(uint32(4))             // channel mask
		le(uint16(1))             // sub-format: PCM
		b.Write(make([]byte, 14)) // rest of the GUID
	}
	b.WriteString("data")
	if dataSize < 0 {
		dataSize = int64(len(samples) * 2)
	}
	le(uint32(dataSize))
	for _, s := range samples {
		le(s)
	}
	return b.Bytes()
}

func TestReadWAV(t *testing.T) {
	samples := []int16{0, 1000, -1000, 32767, -32768, 5}
	list := append([]byte("LIST"), 3, 0, 0, 0, 'a', 'b', 'c', 0) // odd size: padded
	tests := []struct {
		name       string
		in         []byte
		wantFrames int
		wantErr    string
	}{
		{"pcm mono", wavBytes(1, 1, 48000, samples, -1), 6, ""},
		{"pcm stereo", wavBytes(1, 2, 48000, samples, -1), 3, ""},
		{"extensible", wavBytes(0xFFFE, 1, 48000, samples, -1), 6, ""},
		{"streaming size 0", wavBytes(1, 1, 48000, samples, 0), 6, ""},
		{"size overstated", wavBytes(1, 1, 48000, samples, 1000), 6, ""},
		{"chunk before fmt", wavBytes(1, 1, 48000, samples, -1, list), 6, ""},
		{"float", wavBytes(3, 1, 48000, samples, -1), 0, "unsupported"},
		{"not riff", []byte("RIFX....WAVE"), 0, "not a RIFF"},
		{"short", []byte("RIFF"), 0, "riff header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ReadWAV(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReadWAV = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadWAV: %v", err)
			}
			if p.Frames() != tc.wantFrames || p.Rate != 48000 {
				t.Fatalf("ReadWAV: %d frames at %d Hz, want %d at 48000", p.Frames(), p.Rate, tc.wantFrames)
			}
			if p.Samples[3] != 32767 && p.Channels == 1 {
				t.Fatalf("sample 3 = %d", p.Samples[3])
			}
		})
	}
}

func TestToneLevelAndRMS(t *testing.T) {
	// 100 ms of a 1 kHz sine at half scale, then 100 ms of silence.
	p := &PCM{Rate: 48000, Channels: 1, Samples: make([]int16, 9600)}
	for i := 0; i < 4800; i++ {
		p.Samples[i] = int16(16384 * sinTurns(float64(i)*1000/48000))
	}
	if got := p.ToneLevel(1000, 0, 100); got < 0.45 || got > 0.55 {
		t.Errorf("ToneLevel(1 kHz) over the tone = %.3f, want about 0.5", got)
	}
	if got := p.ToneLevel(3000, 0, 100); got > 0.05 {
		t.Errorf("ToneLevel(3 kHz) over a 1 kHz tone = %.3f, want about 0", got)
	}
	if got := p.ToneLevel(1000, 100, 200); got != 0 {
		t.Errorf("ToneLevel over silence = %.3f", got)
	}
	if got := p.RMS(0, 100); got < 0.33 || got > 0.38 {
		t.Errorf("RMS of a half-scale sine = %.3f, want about 0.354", got)
	}
	if got := p.DurationMS(); got != 200 {
		t.Errorf("DurationMS = %d", got)
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(1, 1, 48000, []int16{1, 2, 3}, -1))
	f.Add(wavBytes(0xFFFE, 2, 44100, []int16{1, 2, 3, 4}, 0))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			return
		}
		if p.Channels < 1 || p.Rate < 1 || len(p.Samples)%p.Channels != 0 || len(p.Samples)*2 > len(b) {
			t.Fatalf("ReadWAV accepted an inconsistent stream: %d channels, %d Hz, %d samples from %d bytes",
				p.Channels, p.Rate, len(p.Samples), len(b))
		}
		_ = p.RMS(0, p.DurationMS())
		_ = p.ToneLevel(1000, 0, p.DurationMS())
	})
}

func FuzzParseCues(f *testing.F) {
	f.Add([]byte(`{"duration_ms":10,"cues":[{"kind":"tone","freq_hz":1000,"start_ms":0,"end_ms":10}]}`))
	f.Add([]byte(`{"duration_ms":0,"cues":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCues(b)
		if err != nil {
			return
		}
		// What parses re-encodes to something that parses the same.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseCues(again)
		if err != nil {
			t.Fatalf("re-encoded cue sheet %s does not parse: %v", again, err)
		}
		if s2.DurationMS != s.DurationMS || len(s2.Cues) != len(s.Cues) {
			t.Fatalf("round trip changed the sheet: %+v vs %+v", s, s2)
		}
	})
}

func sinTurns(turns float64) float64 { return math.Sin(2 * math.Pi * turns) }

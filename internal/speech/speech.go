// Package speech makes test audio from a script: spoken lines (espeak-ng),
// pauses and timed tones, as one Ogg/Opus file (48 kHz, mono, 20 ms frames,
// the shape a WebRTC speaker sends) plus a cue sheet that says where each
// item sits on the audio's own timeline.
//
// The cue sheet is the ground truth for tests that check transcripts,
// timestamps and alignment. Offsets count from the first decoded sample: the
// encoder's pre-skip is trimmed on decoding, so the decoded length equals
// the synthesised length, which Synthesize checks.
//
// Tools are the Debian packages that testbed/speech.sh installs: espeak-ng,
// sox and opus-tools.
package speech

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// SampleRate is the rate of everything Synthesize writes.
const SampleRate = 48000

// Kind is what a script item or cue is.
type Kind string

// The kinds of item.
const (
	KindSpeech Kind = "speech"
	KindPause  Kind = "pause"
	KindTone   Kind = "tone"
)

// DefaultVoice is the espeak-ng voice of speech items that name none.
const DefaultVoice = "en-us"

// Item is one step of a script.
type Item struct {
	Kind Kind
	// Text is what a speech item says.
	Text string
	// Voice is the espeak-ng voice ("en-us", "en-gb", "ar", ...); default
	// DefaultVoice.
	Voice string
	// WPM is the speaking rate in words per minute (espeak-ng -s); 0 keeps
	// espeak-ng's default (175).
	WPM int
	// GainDB changes a speech item's level; for a tone it is relative to
	// half of full scale (-6 dBFS), the level of a tone with no gain.
	GainDB float64
	// FreqHz is a tone's frequency.
	FreqHz float64
	// DurMS is the length of a pause or a tone.
	DurMS int
}

// Cue is where one item sits in the produced audio, in milliseconds from
// the first decoded sample; EndMS is exclusive.
type Cue struct {
	Kind    Kind    `json:"kind"`
	Text    string  `json:"text,omitempty"`
	Voice   string  `json:"voice,omitempty"`
	FreqHz  float64 `json:"freq_hz,omitempty"`
	StartMS int64   `json:"start_ms"`
	EndMS   int64   `json:"end_ms"`
}

// CueSheet is the JSON document written beside each clip as
// <clip>.cues.json.
type CueSheet struct {
	DurationMS int64 `json:"duration_ms"`
	Cues       []Cue `json:"cues"`
}

// Clip is a synthesised file and its cue sheet.
type Clip struct {
	Path     string // the Ogg/Opus file
	CuesPath string // Path + ".cues.json"
	Samples  int64  // decoded length in samples at SampleRate
	CueSheet
}

// CuesPath is where the cue sheet of the clip at oggPath lives.
func CuesPath(oggPath string) string { return oggPath + ".cues.json" }

// Tools are the paths of the programs Synthesize runs.
type Tools struct {
	EspeakNG string
	Sox      string
	Opusenc  string
	Opusdec  string
}

// LookupTools finds the tools on PATH.
func LookupTools() (Tools, error) {
	var t Tools
	var missing []string
	for _, x := range []struct {
		name string
		dst  *string
	}{{"espeak-ng", &t.EspeakNG}, {"sox", &t.Sox}, {"opusenc", &t.Opusenc}, {"opusdec", &t.Opusdec}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			missing = append(missing, x.name)
			continue
		}
		*x.dst = p
	}
	if len(missing) > 0 {
		return Tools{}, fmt.Errorf("speech: %s not on PATH; run testbed/speech.sh install", strings.Join(missing, ", "))
	}
	return t, nil
}

// ToolsFromEnv takes the tools from the test bed's speech.env (keys
// ESPEAK_NG, SOX, OPUSENC, OPUSDEC), as internal/testbed returns it.
func ToolsFromEnv(env map[string]string) (Tools, error) {
	t := Tools{EspeakNG: env["ESPEAK_NG"], Sox: env["SOX"], Opusenc: env["OPUSENC"], Opusdec: env["OPUSDEC"]}
	if t.EspeakNG == "" || t.Sox == "" || t.Opusenc == "" || t.Opusdec == "" {
		return Tools{}, errors.New("speech: speech.env lacks ESPEAK_NG, SOX, OPUSENC or OPUSDEC; rerun testbed/speech.sh start")
	}
	return t, nil
}

// Synthesize renders items with the tools on PATH; see Tools.Synthesize.
func Synthesize(ctx context.Context, items []Item, outPath string) (Clip, error) {
	t, err := LookupTools()
	if err != nil {
		return Clip{}, err
	}
	return t.Synthesize(ctx, items, outPath)
}

// Validate reports the first item that cannot be rendered.
func Validate(items []Item) error {
	if len(items) == 0 {
		return errors.New("speech: empty script")
	}
	for i, it := range items {
		var err error
		switch it.Kind {
		case KindSpeech:
			if strings.TrimSpace(it.Text) == "" {
				err = errors.New("speech item without text")
			} else if it.WPM < 0 || it.WPM > 500 {
				err = fmt.Errorf("WPM %d out of range 0..500", it.WPM)
			} else if strings.HasPrefix(it.Voice, "-") || strings.ContainsAny(it.Voice, " \t\n") {
				err = fmt.Errorf("voice %q is not a voice name", it.Voice)
			}
		case KindPause:
			if it.DurMS <= 0 {
				err = fmt.Errorf("pause of %d ms", it.DurMS)
			}
		case KindTone:
			switch {
			case it.DurMS <= 0:
				err = fmt.Errorf("tone of %d ms", it.DurMS)
			case it.FreqHz < 20 || it.FreqHz > 20000:
				err = fmt.Errorf("tone frequency %g Hz out of range 20..20000", it.FreqHz)
			case it.GainDB > 6:
				err = fmt.Errorf("tone gain %g dB would clip", it.GainDB)
			}
		default:
			err = fmt.Errorf("unknown kind %q", it.Kind)
		}
		if err != nil {
			return fmt.Errorf("speech: item %d: %w", i, err)
		}
		if it.GainDB < -60 || it.GainDB > 40 {
			return fmt.Errorf("speech: item %d: gain %g dB out of range -60..40", i, it.GainDB)
		}
	}
	return nil
}

// Synthesize renders items, in order and back to back, to outPath as
// Ogg/Opus and writes the cue sheet to CuesPath(outPath). Speech is trimmed
// of espeak-ng's leading and trailing silence, so a speech cue spans the
// voice itself; put pause items between lines. Output is deterministic:
// the same script gives the same bytes.
func (t Tools) Synthesize(ctx context.Context, items []Item, outPath string) (Clip, error) {
	if err := Validate(items); err != nil {
		return Clip{}, err
	}
	tmp, err := os.MkdirTemp("", "earshot-speech-")
	if err != nil {
		return Clip{}, fmt.Errorf("speech: synthesize: %w", err)
	}
	defer os.RemoveAll(tmp)

	sheet := CueSheet{Cues: make([]Cue, 0, len(items))}
	segs := make([]string, 0, len(items))
	var pos int64 // samples so far
	for i, it := range items {
		seg := filepath.Join(tmp, fmt.Sprintf("seg%04d.wav", i))
		if err := t.render(ctx, tmp, i, it, seg); err != nil {
			return Clip{}, fmt.Errorf("speech: item %d (%s): %w", i, it.Kind, err)
		}
		n, err := wavFrames(seg)
		if err != nil {
			return Clip{}, fmt.Errorf("speech: item %d (%s): %w", i, it.Kind, err)
		}
		if n == 0 {
			return Clip{}, fmt.Errorf("speech: item %d (%s) produced no audio", i, it.Kind)
		}
		c := Cue{Kind: it.Kind, StartMS: msAt(pos), EndMS: msAt(pos + n)}
		switch it.Kind {
		case KindSpeech:
			c.Text, c.Voice = it.Text, voiceOf(it)
		case KindTone:
			c.FreqHz = it.FreqHz
		}
		sheet.Cues = append(sheet.Cues, c)
		segs = append(segs, seg)
		pos += n
	}
	sheet.DurationMS = msAt(pos)

	full := filepath.Join(tmp, "full.wav")
	if err := t.run(ctx, nil, t.Sox, append(append([]string{"-D"}, segs...), full)...); err != nil {
		return Clip{}, fmt.Errorf("speech: concatenate: %w", err)
	}
	if n, err := wavFrames(full); err != nil || n != pos {
		return Clip{}, fmt.Errorf("speech: concatenated %d samples, want %d (%v)", n, pos, err)
	}

	sheetJSON, err := json.MarshalIndent(sheet, "", "  ")
	if err != nil {
		return Clip{}, fmt.Errorf("speech: cue sheet: %w", err)
	}
	sheetJSON = append(sheetJSON, '\n')

	if dir := filepath.Dir(outPath); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Clip{}, fmt.Errorf("speech: %w", err)
		}
	}
	ogg := filepath.Join(tmp, "out.ogg")
	// A serial derived from the script keeps the output reproducible
	// (opusenc picks a random one otherwise). 20 ms frames, as WebRTC sends.
	serial := strconv.FormatUint(uint64(crc32.ChecksumIEEE(sheetJSON)&0x7fffffff), 10) // opusenc reads an int
	if err := t.run(ctx, nil, t.Opusenc, "--quiet", "--bitrate", "32", "--framesize", "20",
		"--serial", serial, full, ogg); err != nil {
		return Clip{}, fmt.Errorf("speech: encode: %w", err)
	}
	dec, err := t.Decode(ctx, ogg)
	if err != nil {
		return Clip{}, fmt.Errorf("speech: check the encoding: %w", err)
	}
	if int64(dec.Frames()) != pos || dec.Rate != SampleRate {
		return Clip{}, fmt.Errorf("speech: the Ogg decodes to %d samples at %d Hz, want %d at %d",
			dec.Frames(), dec.Rate, pos, SampleRate)
	}

	if err := writeFileAtomic(outPath, ogg, nil); err != nil {
		return Clip{}, err
	}
	cues := CuesPath(outPath)
	if err := writeFileAtomic(cues, "", sheetJSON); err != nil {
		return Clip{}, err
	}
	return Clip{Path: outPath, CuesPath: cues, Samples: pos, CueSheet: sheet}, nil
}

// Decode decodes an Ogg/Opus file to 48 kHz PCM with opusdec.
func (t Tools) Decode(ctx context.Context, oggPath string) (*PCM, error) {
	tmp, err := os.MkdirTemp("", "earshot-opusdec-")
	if err != nil {
		return nil, fmt.Errorf("speech: decode: %w", err)
	}
	defer os.RemoveAll(tmp)
	wav := filepath.Join(tmp, "dec.wav")
	if err := t.run(ctx, nil, t.Opusdec, "--quiet", "--rate", strconv.Itoa(SampleRate), oggPath, wav); err != nil {
		return nil, fmt.Errorf("speech: decode %s: %w", oggPath, err)
	}
	return ReadWAVFile(wav)
}

// ReadCues reads a cue sheet (the <clip>.cues.json file).
func ReadCues(path string) (CueSheet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return CueSheet{}, fmt.Errorf("speech: read cues: %w", err)
	}
	s, err := ParseCues(b)
	if err != nil {
		return CueSheet{}, fmt.Errorf("speech: read cues %s: %w", path, err)
	}
	return s, nil
}

// ParseCues decodes and checks a cue sheet: known kinds, cues in order,
// none past the end.
func ParseCues(b []byte) (CueSheet, error) {
	var s CueSheet
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return CueSheet{}, fmt.Errorf("parse cues: %w", err)
	}
	if dec.More() {
		return CueSheet{}, errors.New("parse cues: trailing data")
	}
	if s.DurationMS < 0 {
		return CueSheet{}, fmt.Errorf("parse cues: duration_ms %d", s.DurationMS)
	}
	var prevEnd int64
	for i, c := range s.Cues {
		switch c.Kind {
		case KindSpeech, KindPause, KindTone:
		default:
			return CueSheet{}, fmt.Errorf("parse cues: cue %d: unknown kind %q", i, c.Kind)
		}
		if c.StartMS < prevEnd || c.EndMS < c.StartMS || c.EndMS > s.DurationMS {
			return CueSheet{}, fmt.Errorf("parse cues: cue %d: [%d, %d) out of order or past %d ms",
				i, c.StartMS, c.EndMS, s.DurationMS)
		}
		prevEnd = c.EndMS
	}
	return s, nil
}

// Speech returns the speech cues' texts joined by spaces: the reference
// transcript of the clip.
func (s CueSheet) Speech() string {
	var parts []string
	for _, c := range s.Cues {
		if c.Kind == KindSpeech {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, " ")
}

func voiceOf(it Item) string {
	if it.Voice == "" {
		return DefaultVoice
	}
	return it.Voice
}

func msAt(samples int64) int64 { return samples * 1000 / SampleRate }

// outFormat is the sample format of every segment: sox converts to it.
var outFormat = []string{"-r", strconv.Itoa(SampleRate), "-c", "1", "-b", "16", "-e", "signed-integer"}

func (t Tools) render(ctx context.Context, tmp string, i int, it Item, seg string) error {
	switch it.Kind {
	case KindSpeech:
		raw := filepath.Join(tmp, fmt.Sprintf("raw%04d.wav", i))
		args := []string{"-v", voiceOf(it), "-w", raw, "--stdin"}
		if it.WPM > 0 {
			args = append(args, "-s", strconv.Itoa(it.WPM))
		}
		if err := t.run(ctx, strings.NewReader(it.Text), t.EspeakNG, args...); err != nil {
			return err
		}
		// espeak-ng's silence is digital zero, so a -60 dB gate trims it
		// exactly; -D keeps silence zero (no dither noise).
		sox := append([]string{"-D", raw}, outFormat...)
		sox = append(sox, seg, "silence", "1", "1s", "-60d", "reverse", "silence", "1", "1s", "-60d", "reverse")
		if it.GainDB != 0 {
			sox = append(sox, "gain", fmtFloat(it.GainDB))
		}
		return t.run(ctx, nil, t.Sox, sox...)
	case KindPause:
		args := append([]string{"-D", "-n"}, outFormat...)
		args = append(args, seg, "trim", "0", strconv.FormatInt(samplesFor(it.DurMS), 10)+"s")
		return t.run(ctx, nil, t.Sox, args...)
	case KindTone:
		args := append([]string{"-D", "-n"}, outFormat...)
		args = append(args, seg, "synth", strconv.FormatInt(samplesFor(it.DurMS), 10)+"s",
			"sine", fmtFloat(it.FreqHz), "vol", "0.5")
		if it.GainDB != 0 {
			args = append(args, "gain", fmtFloat(it.GainDB))
		}
		return t.run(ctx, nil, t.Sox, args...)
	}
	return fmt.Errorf("unknown kind %q", it.Kind)
}

func samplesFor(ms int) int64 { return int64(ms) * SampleRate / 1000 }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (t Tools) run(ctx context.Context, stdin *strings.Reader, bin string, args ...string) error {
	if bin == "" {
		return errors.New("tool path not set (see LookupTools / ToolsFromEnv)")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, msg)
	}
	return nil
}

func wavFrames(path string) (int64, error) {
	p, err := ReadWAVFile(path)
	if err != nil {
		return 0, err
	}
	if p.Rate != SampleRate || p.Channels != 1 {
		return 0, fmt.Errorf("%s: %d Hz × %d channels, want %d Hz mono", path, p.Rate, p.Channels, SampleRate)
	}
	return int64(p.Frames()), nil
}

// writeFileAtomic puts src's bytes (or data when src is "") at dst through a
// temporary file in dst's folder and a rename, so readers never see half a
// file.
func writeFileAtomic(dst, src string, data []byte) error {
	if src != "" {
		var err error
		if data, err = os.ReadFile(src); err != nil {
			return fmt.Errorf("speech: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("speech: write %s: %w", dst, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp)
		return fmt.Errorf("speech: write %s: %w", dst, errors.Join(werr, cerr))
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("speech: write %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("speech: write %s: %w", dst, err)
	}
	return nil
}

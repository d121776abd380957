// Command hearset hears the tune half of a spoken labelled set the way the
// pipeline does, without Janus, and scores what was heard with a policy:
//
//	hearset [-set policy/testdata/spoken/spoken.jsonl] [-whisper http://127.0.0.1:18000]
//	        [-out out/hearset] [-policy file] [-rehear] [-v] [-joined]
//
// Each `tune` line is synthesised with espeak-ng (the voice and rate of the
// alert quality benchmark's bot, a pause either side), decoded to 16 kHz,
// cut into utterances by the transcription worker's segmenter, sent to the
// Whisper server as the worker sends it (language "en", no prompt) and
// attributed with the worker's filter. The heard segments, with their word
// probabilities, are cached in OUT/heard-segments.json (reused unless
// -rehear), and OUT/heard.jsonl holds the heard texts in the labelled-set
// format for `earshot rules test`. Scoring pushes each line's segments
// through a fresh room window, as the policy stage does, and prints per
// category what was found, then every miss and false alarm with the spoken
// text next to the heard one. With -joined the lines go through one
// window in order, 2 s apart, as the benchmark's bot says them, so numbers
// and phrases that join across lines show up as they would there.
//
// Held-out lines are never heard or shown: tuning on them would make the
// held-out figures meaningless.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

func main() {
	set := flag.String("set", "policy/testdata/spoken/spoken.jsonl", "spoken labelled set")
	whisper := flag.String("whisper", "http://127.0.0.1:18000", "Whisper server (the test bed's fixture)")
	out := flag.String("out", "out/hearset", "folder for the heard texts")
	pol := flag.String("policy", "", "policy file (default: the built-in policy)")
	rehear := flag.Bool("rehear", false, "synthesise and transcribe again even when OUT holds heard texts")
	joined := flag.Bool("joined", false, "score the lines in order in one room window, 2 s apart, as the benchmark says them (findings across lines count against the line they start in)")
	tail := flag.Bool("tail", false, "send speech after the engine's last word again, as the worker does with transcribe.cover_tail (transcribe.CoverTail)")
	verbose := flag.Bool("v", false, "while hearing, print each utterance and the engine's raw segments (before the worker's filter)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *set, *whisper, *out, *pol, *rehear, *verbose, *joined, *tail); err != nil {
		fmt.Fprintln(os.Stderr, "hearset:", err)
		os.Exit(1)
	}
}

// heardLine is one tune line and what the engine heard.
type heardLine struct {
	Line     policy.LabelledLine `json:"line"`
	Segments []heardSegment      `json:"segments"`
}

// heardSegment is one transcript segment as the worker would produce it.
type heardSegment struct {
	First   int64                       `json:"first_sample"`
	Last    int64                       `json:"last_sample"`
	Payload event.TranscriptSegment     `json:"payload"`
	Data    event.TranscriptSegmentData `json:"data"`
}

func (h heardLine) text() string {
	var parts []string
	for _, s := range h.Segments {
		parts = append(parts, strings.TrimSpace(s.Data.Text))
	}
	return strings.Join(parts, " ")
}

func run(ctx context.Context, w io.Writer, setPath, whisper, out, polPath string, rehear, verbose, joined, tail bool) error {
	f, err := os.Open(setPath)
	if err != nil {
		return err
	}
	set, err := policy.ReadLabelled(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", setPath, err)
	}
	set = slices.DeleteFunc(set, func(l policy.LabelledLine) bool { return l.Split != "tune" })
	if len(set) == 0 {
		return fmt.Errorf("%s has no tune lines", setPath)
	}
	p, err := policy.Default()
	if polPath != "" {
		p, err = policy.Load(polPath)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	cache := filepath.Join(out, "heard-segments.json")
	heard, err := readCache(cache, set)
	if err != nil || rehear {
		if heard, err = hear(ctx, set, whisper, verbose, tail); err != nil {
			return err
		}
		if err := writeJSON(cache, heard); err != nil {
			return err
		}
	}
	if err := writeHeardSet(filepath.Join(out, "heard.jsonl"), heard); err != nil {
		return err
	}
	score(w, p, heard, joined)
	return nil
}

// readCache returns the cached heard lines when they are for exactly set.
func readCache(path string, set []policy.LabelledLine) ([]heardLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var heard []heardLine
	if err := json.Unmarshal(b, &heard); err != nil {
		return nil, err
	}
	if len(heard) != len(set) {
		return nil, errors.New("cache is for another set")
	}
	for i := range set {
		if heard[i].Line.ID != set[i].ID || heard[i].Line.Text != set[i].Text {
			return nil, errors.New("cache is for another set")
		}
		heard[i].Line = set[i] // labels may have been corrected
	}
	return heard, nil
}

func hear(ctx context.Context, set []policy.LabelledLine, whisper string, verbose, tail bool) ([]heardLine, error) {
	tools, err := speech.LookupTools()
	if err != nil {
		return nil, err
	}
	var eng transcribe.Engine
	eng, err = httpengine.New(httpengine.Config{BaseURL: whisper, Model: "tiny.en", Timeout: 2 * time.Minute})
	if err != nil {
		return nil, err
	}
	if tail {
		eng = transcribe.CoverTail(eng, transcribe.TailConfig{})
	}
	tmp, err := os.MkdirTemp("", "hearset-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var heard []heardLine
	for i, l := range set {
		// The benchmark's bot speaks every line in the default voice and
		// rate, with 2 s of pause after it.
		items := []speech.Item{{Kind: speech.KindPause, DurMS: 1000}, {Kind: speech.KindSpeech, Text: l.Text}, {Kind: speech.KindPause, DurMS: 2000}}
		clip, err := tools.Synthesize(ctx, items, filepath.Join(tmp, fmt.Sprintf("%03d.ogg", i)))
		if err != nil {
			return nil, err
		}
		pcm, err := decode16k(ctx, tools, clip.Path, tmp)
		if err != nil {
			return nil, err
		}
		seg, err := transcribe.NewSegmenter(transcribe.SegmenterConfig{})
		if err != nil {
			return nil, err
		}
		utts := append(seg.Push(0, pcm), seg.Flush()...)
		h := heardLine{Line: l}
		for _, u := range utts {
			res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: u.Samples, Language: "en"})
			if err != nil {
				return nil, fmt.Errorf("line %s: %w", l.ID, err)
			}
			if verbose {
				fmt.Fprintf(os.Stderr, "utt start %d len %d own %v speech %v\n", u.Start, len(u.Samples), u.Own, u.Speech)
				for _, sg := range res.Segments {
					fmt.Fprintf(os.Stderr, "  seg %.2f-%.2f %q ns=%.2f lp=%.2f words=%d\n", sg.Start, sg.End, sg.Text, sg.NoSpeechProb, sg.AvgLogProb, len(sg.Words))
				}
			}
			for _, tr := range transcribe.Attribute(u, res, transcribe.DefaultFilter) {
				h.Segments = append(h.Segments, heardSegment{First: tr.Span.First, Last: tr.Span.Last, Payload: tr.Payload, Data: tr.Data})
			}
		}
		fmt.Fprintf(os.Stderr, "%s: %d utterances, heard %q\n", l.ID, len(utts), h.text())
		heard = append(heard, h)
	}
	return heard, nil
}

// decode16k decodes an Ogg/Opus clip to 16 kHz mono float samples, as
// the worker's decoder does (libopus decoding at 16 kHz).
func decode16k(ctx context.Context, tools speech.Tools, ogg, tmp string) ([]float32, error) {
	wav := filepath.Join(tmp, "dec16k.wav")
	cmd := exec.CommandContext(ctx, tools.Opusdec, "--quiet", "--rate", "16000", ogg, wav)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("opusdec: %w: %s", err, b)
	}
	pcm, err := speech.ReadWAVFile(wav)
	if err != nil {
		return nil, err
	}
	if pcm.Rate != transcribe.AudioRate || pcm.Channels != 1 {
		return nil, fmt.Errorf("opusdec wrote %d Hz, %d channels", pcm.Rate, pcm.Channels)
	}
	out := make([]float32, len(pcm.Samples))
	for i, s := range pcm.Samples {
		out[i] = float32(s) / 32768
	}
	return out, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// writeHeardSet writes the heard texts as a labelled set.
func writeHeardSet(path string, heard []heardLine) error {
	var sb strings.Builder
	for _, h := range heard {
		l := h.Line
		l.Text, l.Tag = h.text(), "heard"
		if strings.TrimSpace(l.Text) == "" {
			l.Text = "(nothing heard)"
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// segments are the line's heard segments as the policy stage gets them.
// Its samples are moved by at.
func (h heardLine) segments(origin time.Time, at int64) []policy.Segment {
	var out []policy.Segment
	for i, s := range h.Segments {
		seg := policy.Segment{
			ID: fmt.Sprintf("%s-%d", h.Line.ID, i), Room: "room", Session: "session", Speaker: "speaker",
			Timeline: event.Timeline{Track: "track", FirstSample: s.First + at, LastSample: s.Last + at, Origin: origin},
			Language: s.Payload.Language, AvgLogProb: s.Payload.AvgLogProb, NoSpeechProb: s.Payload.NoSpeechProb,
			Speech: s.Payload.Speech, Text: s.Data.Text,
		}
		for _, wd := range s.Data.Words {
			seg.Words = append(seg.Words, policy.Word{Text: wd.Word, FirstSample: wd.FirstSample + at, LastSample: wd.LastSample + at, Probability: wd.Probability})
		}
		out = append(out, seg)
	}
	return out
}

// score pushes each line's heard segments through a fresh room window, or
// with joined all lines in order through one window, 2 s apart as the
// benchmark's bot says them (a finding belongs to the line its first words
// are in), and prints what was found.
func score(w io.Writer, p *policy.Policy, heard []heardLine, joined bool) {
	type counts struct{ tp, fp, fn int }
	byCat := map[string]*counts{}
	get := func(c string) *counts {
		if byCat[c] == nil {
			byCat[c] = &counts{}
		}
		return byCat[c]
	}
	var report []string
	origin := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	found := make([]map[string]string, len(heard)) // line → category → rule and score
	lineOf := map[string]int{}                     // segment ID → line
	win := policy.NewWindow(policy.WindowConfig{})
	var at int64 // where the line's clip starts on the room's track
	for i, h := range heard {
		found[i] = map[string]string{}
		if !joined {
			win, at = policy.NewWindow(policy.WindowConfig{}), 0
		}
		segs := h.segments(origin, at)
		for _, seg := range segs {
			lineOf[seg.ID] = i
			for _, f := range win.Push(p, seg) {
				j := i
				if len(f.Spans) > 0 {
					j = lineOf[f.Spans[0].Segment]
				}
				found[j][f.Category] = fmt.Sprintf("%s %.2f", f.RuleID, f.Score)
			}
		}
		if n := len(segs); n > 0 {
			// The benchmark's bot pauses 2 s after each line.
			at = segs[n-1].Timeline.LastSample + 1 + 2*event.SampleRate
		}
	}
	for i, h := range heard {
		got := found[i]
		x := p.ExplainSegments(h.segments(origin, 0))
		why := func(c string) string {
			var out []string
			for _, cd := range x.Candidates {
				if cd.Category == c {
					out = append(out, fmt.Sprintf("%s %s %q %s", cd.RuleID, cd.Status, cd.Text, cd.Why))
				}
			}
			out = append(out, x.NearMisses...)
			return strings.Join(out, "; ")
		}
		for c, rule := range got {
			if slices.Contains(h.Line.Labels, c) {
				get(c).tp++
				continue
			}
			get(c).fp++
			report = append(report, fmt.Sprintf("FALSE %s %s (%s)\n  spoken: %s\n  heard:  %s\n  why:    %s", h.Line.ID, c, rule, h.Line.Text, h.text(), why(c)))
		}
		for _, c := range h.Line.Labels {
			if _, ok := got[c]; ok {
				continue
			}
			get(c).fn++
			report = append(report, fmt.Sprintf("MISS  %s %s\n  spoken: %s\n  heard:  %s\n  why:    %s", h.Line.ID, c, h.Line.Text, h.text(), why(c)))
		}
	}
	cats := make([]string, 0, len(byCat))
	for c := range byCat {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var all counts
	fmt.Fprintf(w, "%-20s %4s %4s %4s\n", "category", "tp", "fp", "fn")
	for _, c := range cats {
		x := byCat[c]
		all.tp, all.fp, all.fn = all.tp+x.tp, all.fp+x.fp, all.fn+x.fn
		fmt.Fprintf(w, "%-20s %4d %4d %4d\n", c, x.tp, x.fp, x.fn)
	}
	prec, rec := 1.0, 0.0
	if all.tp+all.fp > 0 {
		prec = float64(all.tp) / float64(all.tp+all.fp)
	}
	if all.tp+all.fn > 0 {
		rec = float64(all.tp) / float64(all.tp+all.fn)
	}
	fmt.Fprintf(w, "tune lines: %d; recall %.3f (%d/%d), precision %.3f\n\n", len(heard), rec, all.tp, all.tp+all.fn, prec)
	for _, r := range report {
		fmt.Fprintln(w, r)
	}
}

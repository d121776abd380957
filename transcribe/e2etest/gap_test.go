package e2etest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/transcribe"
)

// TestGapOffline is a diagnostic, not a real-time test: it runs the
// worker's segmenter and attribution offline over the benchmark's (or the
// conversation's) clips, with the Whisper fixture, and writes per line the
// reference, the pipeline's and the whole file's text. EARSHOT_GAP=bench or
// conv selects the script; EARSHOT_GAP_OUT the table's path.
func TestGapOffline(t *testing.T) {
	which := os.Getenv("EARSHOT_GAP")
	if which == "" {
		t.Skip("diagnostic: set EARSHOT_GAP=bench|conv (needs the Whisper fixture)")
	}
	script, gap := gapScript(t, which)
	eng := whisper(t)
	clips := cachedClips(t, which, script, gap)
	// EARSHOT_GAP_CTX: "product:<length>" uses the worker's context
	// (length as a Go duration; "-1s" for none); other values are
	// experiments (contextFunc).
	mode := os.Getenv("EARSHOT_GAP_CTX")
	cc := transcribe.ContextConfig{Length: -1}
	if l, ok := strings.CutPrefix(mode, "product:"); ok {
		d, err := time.ParseDuration(l)
		if err != nil {
			t.Fatal(err)
		}
		cc.Length, mode = d, ""
	}
	g := offlineGap(t, eng, clips, script, transcribe.SegmenterConfig{}, cc, contextFunc(t, mode))
	out := os.Getenv("EARSHOT_GAP_OUT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "gap.md")
	}
	if err := os.WriteFile(out, []byte(g.table()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("table in %s", out)
	t.Logf("engine seconds per utterance: p50 %.3f p95 %.3f", quantile(g.engTimes, 0.5), quantile(g.engTimes, 0.95))
	t.Logf("offline: pipeline WER %.3f (speaker-wise), file WER %.3f, gap %.1f points", g.werPipe, g.werFile, 100*(g.werPipe-g.werFile))
}

// cachedClips renders the script once per machine (espeak-ng is slow).
func cachedClips(t *testing.T, name string, script []speech.Line, gap int) map[string]speech.Clip {
	dir := filepath.Join(os.TempDir(), "earshot-gap-clips", name)
	clips := map[string]speech.Clip{}
	for _, sp := range []string{"alice", "bob"} {
		path := filepath.Join(dir, sp+".ogg")
		cs, err := speech.ReadCues(speech.CuesPath(path))
		if err != nil {
			clips = nil
			break
		}
		clips[sp] = speech.Clip{Path: path, CuesPath: speech.CuesPath(path), Samples: cs.DurationMS * 48, CueSheet: cs}
	}
	if clips != nil {
		return clips
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tools := e2e.SpeechTools(t)
	clips, err := tools.Conversation(ctx, script, gap, dir)
	if err != nil {
		t.Fatal(err)
	}
	return clips
}

// gapLine is one script line with what each side heard.
type gapLine struct {
	speaker, ref string
	start, end   int64 // timeline samples (48 kHz) of the line's speech
	pipe, file   []string
	utts         []int // utterances whose words landed here
	rawDropped   []string
}

type gapResult struct {
	lines            []gapLine
	utts             []transcribe.Utterance
	uttSpeaker       []string
	werPipe, werFile float64
	engTimes         []float64
}

// offlineGap segments each speaker's clip as the worker does (1 s pushes),
// transcribes each utterance, attributes the words, and assigns words to
// lines by time; the whole-file side is fileWER's mix.
func offlineGap(t *testing.T, eng transcribe.Engine, clips map[string]speech.Clip, script []speech.Line, cfg transcribe.SegmenterConfig, cc transcribe.ContextConfig,
	withContext func(pcm []float32, prev []transcribe.Utterance, u transcribe.Utterance) transcribe.Utterance) *gapResult {
	g := &gapResult{}
	// Lines in script order, with their cues.
	next := map[string]int{}
	for _, l := range script {
		c := clips[l.Speaker]
		k := next[l.Speaker]
		var cue speech.Cue
		for n := 0; ; {
			cue = c.Cues[k]
			k++
			if cue.Kind == speech.KindSpeech {
				break
			}
			n++
		}
		next[l.Speaker] = k
		g.lines = append(g.lines, gapLine{speaker: l.Speaker, ref: l.Text, start: cue.StartMS * 48, end: cue.EndMS * 48})
	}
	nearest := func(speaker string, a, b int64) int {
		best, bd := -1, int64(1<<62)
		c := a + (b-a)/2
		for i, l := range g.lines {
			if speaker != "" && l.speaker != speaker {
				continue
			}
			d := int64(0)
			if c < l.start {
				d = l.start - c
			} else if c > l.end {
				d = c - l.end
			}
			if d < bd {
				best, bd = i, d
			}
		}
		return best
	}
	ctx := context.Background()
	hyp := map[string][]string{}
	for _, sp := range []string{"alice", "bob"} {
		c, ok := clips[sp]
		if !ok {
			continue
		}
		pcm := decodeClipPCM(t, c.Path)
		utts := segmentPCM(t, cfg, pcm)
		tc := transcribe.NewTrackContext(cc)
		for k, u := range utts {
			if withContext != nil {
				u = withContext(pcm, utts[:k], u)
			}
			t0 := time.Now()
			u, res, _, err := tc.Transcribe(ctx, eng, u, transcribe.Audio{Language: "en"})
			if err != nil {
				t.Fatal(err)
			}
			g.engTimes = append(g.engTimes, time.Since(t0).Seconds())
			ui := len(g.utts)
			g.utts = append(g.utts, u)
			g.uttSpeaker = append(g.uttSpeaker, sp)
			kept := map[int64]bool{}
			for _, tr := range transcribe.Attribute(u, res, transcribe.DefaultFilter) {
				if len(tr.Data.Words) == 0 {
					li := nearest(sp, tr.Span.First, tr.Span.Last)
					g.lines[li].pipe = append(g.lines[li].pipe, tr.Data.Text)
					hyp[sp] = append(hyp[sp], tr.Data.Text)
					continue
				}
				for _, w := range tr.Data.Words {
					kept[w.FirstSample] = true
					li := nearest(sp, w.FirstSample, w.LastSample)
					g.lines[li].pipe = append(g.lines[li].pipe, w.Word)
					hyp[sp] = append(hyp[sp], w.Word)
					if n := len(g.lines[li].utts); n == 0 || g.lines[li].utts[n-1] != ui {
						g.lines[li].utts = append(g.lines[li].utts, ui)
					}
				}
			}
			// Words the engine heard inside the utterance's own range
			// that attribution dropped (filter, speech check).
			for _, s := range res.Segments {
				for _, w := range s.Words {
					a := u.Start + int64(math.Round(w.Start*48000))
					b := u.Start + int64(math.Round(w.End*48000))
					c := a + (b-a)/2
					if c >= u.Own.First && c <= u.Own.Last && !kept[a] {
						li := nearest(sp, a, b)
						g.lines[li].rawDropped = append(g.lines[li].rawDropped, fmt.Sprintf("%s@u%d", strings.TrimSpace(w.Word), ui))
					}
				}
			}
		}
	}
	hj := map[string]string{}
	for sp, ws := range hyp {
		hj[sp] = strings.Join(ws, " ")
	}
	g.werPipe = speakerWER(script, hj)
	// The whole file, as fileWER sends it.
	mix := mixClips(t, clips)
	res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: mix, Language: "en"})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, s := range res.Segments {
		all = append(all, strings.TrimSpace(s.Text))
		for _, w := range s.Words {
			li := nearest("", int64(w.Start*48000), int64(w.End*48000))
			g.lines[li].file = append(g.lines[li].file, strings.TrimSpace(w.Word))
		}
	}
	g.werFile = wer.WER(scriptText(script), strings.Join(all, " "))
	return g
}

func (g *gapResult) table() string {
	var b strings.Builder
	var pe, fe, rw int
	fmt.Fprintf(&b, "| # | sp | utts | pipe err | file err | reference | pipeline | file | dropped by attribution |\n|---|---|---|---|---|---|---|---|---|\n")
	for i, l := range g.lines {
		p := wer.Measure(l.ref, strings.Join(l.pipe, " "))
		f := wer.Measure(l.ref, strings.Join(l.file, " "))
		pe += p.Errors()
		fe += f.Errors()
		rw += p.RefWords
		var us []string
		for _, u := range l.utts {
			utt := g.utts[u]
			us = append(us, fmt.Sprintf("u%d %.2f-%.2fs", u, float64(utt.Start)/48000, float64(utt.Span().Last+1)/48000))
		}
		mark := ""
		if p.Errors() != f.Errors() {
			mark = " **"
		}
		fmt.Fprintf(&b, "| %d%s | %s | %s | %d | %d | %s | %s | %s | %s |\n", i, mark, l.speaker, strings.Join(us, ", "), p.Errors(), f.Errors(),
			l.ref, strings.Join(l.pipe, " "), strings.Join(l.file, " "), strings.Join(l.rawDropped, " "))
	}
	fmt.Fprintf(&b, "\nper-line errors: pipeline %d, file %d, of %d reference words; pipeline WER (speaker-wise) %.3f, file WER %.3f\n",
		pe, fe, rw, g.werPipe, g.werFile)
	// Utterance lengths.
	var lens []float64
	for _, u := range g.utts {
		lens = append(lens, u.Duration().Seconds())
	}
	sort.Float64s(lens)
	if len(lens) > 0 {
		fmt.Fprintf(&b, "%d utterances, length min %.2fs median %.2fs max %.2fs\n", len(lens), lens[0], lens[len(lens)/2], lens[len(lens)-1])
	}
	return b.String()
}

// contextFunc returns how an utterance gets audio context: "" none;
// "contig:S" the S seconds of the track before it; "splice:S" the previous
// utterances' speech (up to S seconds, within the last 30 s) joined by
// 0.3 s of silence.
func contextFunc(t *testing.T, mode string) func([]float32, []transcribe.Utterance, transcribe.Utterance) transcribe.Utterance {
	if mode == "" {
		return nil
	}
	kind, arg, _ := strings.Cut(mode, ":")
	splGapMS := 300
	if v, err := strconv.Atoi(os.Getenv("EARSHOT_GAP_SPLICE_MS")); err == nil {
		splGapMS = v
	}
	var sec float64
	fmt.Sscanf(arg, "%g", &sec)
	n := int64(sec * transcribe.AudioRate)
	return func(pcm []float32, prev []transcribe.Utterance, u transcribe.Utterance) transcribe.Utterance {
		k := transcribe.ToAudio(u.Start)
		var pre []float32
		switch kind {
		case "contig":
			pre = pcm[max(k-n, 0):k]
		case "splice":
			gap := make([]float32, transcribe.AudioRate*splGapMS/1000)
			for i := len(prev) - 1; i >= 0 && int64(len(pre)) < n; i-- {
				p := prev[i]
				if u.Start-p.Span().Last > 30*48000 {
					break
				}
				pre = append(append(append([]float32(nil), p.Samples...), gap...), pre...)
			}
			if int64(len(pre)) > n {
				pre = pre[int64(len(pre))-n:]
			}
		default:
			t.Fatalf("context mode %q", mode)
		}
		v := u
		v.Start = u.Start - int64(len(pre))*transcribe.Ratio
		v.Samples = append(append([]float32(nil), pre...), u.Samples...)
		return v
	}
}

// TestGapBatchOffline is a diagnostic for a second, non-live pass: each
// speaker's utterances are grouped into batches of up to
// EARSHOT_GAP_BATCH of speech (pauses shortened to 300 ms) and every word
// the engine hears in a batch is kept. Speaker-wise WER against the file.
func TestGapBatchOffline(t *testing.T) {
	which, limit := os.Getenv("EARSHOT_GAP"), os.Getenv("EARSHOT_GAP_BATCH")
	if which == "" || limit == "" {
		t.Skip("diagnostic: set EARSHOT_GAP=bench|conv and EARSHOT_GAP_BATCH=<duration>")
	}
	maxLen, err := time.ParseDuration(limit)
	if err != nil {
		t.Fatal(err)
	}
	script, gap := gapScript(t, which)
	eng := whisper(t)
	clips := cachedClips(t, which, script, gap)
	ctx := context.Background()
	hyp := map[string]string{}
	pause := make([]float32, transcribe.AudioRate*3/10)
	calls := 0
	for sp, c := range clips {
		utts := segmentPCM(t, transcribe.SegmenterConfig{}, decodeClipPCM(t, c.Path))
		var words []string
		flush := func(batch []float32) {
			if len(batch) == 0 {
				return
			}
			res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: batch, Language: "en"})
			if err != nil {
				t.Fatal(err)
			}
			calls++
			for _, s := range res.Segments {
				words = append(words, strings.TrimSpace(s.Text))
			}
		}
		var batch []float32
		for _, u := range utts {
			if len(batch) > 0 && len(batch)+len(pause)+len(u.Samples) > int(maxLen.Seconds()*transcribe.AudioRate) {
				flush(batch)
				batch = nil
			}
			if len(batch) > 0 {
				batch = append(batch, pause...)
			}
			batch = append(batch, u.Samples...)
		}
		flush(batch)
		hyp[sp] = strings.Join(words, " ")
	}
	fileWER, _ := fileWER(t, eng, clips, script)
	pipe := speakerWER(script, hyp)
	t.Logf("batches of %v (%d calls): WER %.3f, file %.3f, gap %.1f points", maxLen, calls, pipe, fileWER, 100*(pipe-fileWER))
}

// gapScript is the script EARSHOT_GAP names (the benchmark's 104 lines or
// the conversation) and the pause between its lines in milliseconds.
func gapScript(t *testing.T, which string) ([]speech.Line, int) {
	switch which {
	case "bench":
		var script []speech.Line
		for i := range 104 {
			script = append(script, speech.Line{Speaker: []string{"alice", "bob"}[i%2], Text: benchSentences[i%len(benchSentences)]})
		}
		return script, 1000
	case "conv":
		return conversation, 1200
	}
	t.Fatalf("EARSHOT_GAP=%q: want bench or conv", which)
	return nil, 0
}

// segmentPCM cuts a track's 16 kHz audio into utterances as the worker's
// segmenter does, fed a second at a time.
func segmentPCM(t *testing.T, cfg transcribe.SegmenterConfig, pcm []float32) []transcribe.Utterance {
	seg, err := transcribe.NewSegmenter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var utts []transcribe.Utterance
	for i := 0; i < len(pcm); i += transcribe.AudioRate {
		utts = append(utts, seg.Push(int64(i)*transcribe.Ratio, pcm[i:min(i+transcribe.AudioRate, len(pcm))])...)
	}
	return append(utts, seg.Flush()...)
}

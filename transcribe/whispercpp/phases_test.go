//go:build whisper

package whispercpp

import (
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	whisper "github.com/ggerganov/whisper.cpp/bindings/go"

	"github.com/earshot/earshot/internal/wer"
)

// BenchmarkPhases splits whisper.cpp's time per call on the reference's
// lines (EARSHOT_WHISPER_MODEL, EARSHOT_WHISPER_REF, as TestRealWeights)
// into the log-mel front end, the encoder and the decoder (sampling,
// decoding and the DTW pass), from whisper.cpp's own timings, for the full
// 30 s window and fitted windows with a few margins, and logs a table row
// per window with what each does to the tokens and last-word ends
// (transcribe/README.md, "Engine time"). EARSHOT_WHISPER_THREADS sets the
// thread count (2). A measurement, not a figure of make bench: run it
// through testbed/whisper-sid.sh exec under the real-time lock.
func BenchmarkPhases(b *testing.B) {
	model, refDir := os.Getenv("EARSHOT_WHISPER_MODEL"), os.Getenv("EARSHOT_WHISPER_REF")
	if model == "" || refDir == "" {
		b.Skip("EARSHOT_WHISPER_MODEL and EARSHOT_WHISPER_REF are not both set (see TestRealWeights)")
	}
	threads := 2
	if v := os.Getenv("EARSHOT_WHISPER_THREADS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("EARSHOT_WHISPER_THREADS=%q", v)
		}
		threads = n
	}
	ref, err := readReference(refDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("| window | threads | mel ms | encode ms | decode ms | call ms | same tokens | last word ≤ 0.2 s | WER %% (faster-whisper's) |")
	for _, v := range []struct {
		window string
		margin int
	}{{WindowFull, 0}, {WindowFit, 25}, {WindowFit, fitMargin}, {WindowFit, 100}} {
		e, err := New(Config{ModelPath: model, Threads: threads, Window: v.window})
		if err != nil {
			b.Fatal(err)
		}
		e.margin = v.margin
		if v.window == WindowFull {
			// After New: it loads ggml's backends, whose features this lists.
			b.Logf("whisper.cpp system info: %s", whisper.Whisper_print_system_info())
		}
		transcribeLine(b, e, refDir, ref.Utterances[0]) // warm-up
		var (
			sum                  = map[string]float64{}
			call                 float64
			n, same, near        int
			refs, cppHyps, fwHyp []string
		)
		for _, u := range ref.Utterances {
			if u.Script == "" {
				continue
			}
			e.wctx.Whisper_reset_timings()
			l := transcribeLine(b, e, refDir, u)
			mark := testLogs.len()
			e.wctx.Whisper_print_timings()
			for k, ms := range phaseTimes(testLogs.since(mark)) {
				sum[k] += ms
			}
			call += l.elapsed * 1000
			n++
			if slices.Equal(l.tokens, u.Tokens) {
				same++
			}
			if math.Abs(l.lastEnd-u.LastWordEnd) <= lastWordSlack {
				near++
			}
			refs, cppHyps, fwHyp = append(refs, u.Script), append(cppHyps, l.text), append(fwHyp, u.Text)
		}
		e.Close()
		name := v.window
		if v.window == WindowFit {
			name += " +" + strconv.Itoa(v.margin)
		}
		f := float64(n)
		b.Logf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %d/%d | %d/%d | %.2f (%.2f) |", name, threads,
			sum["mel"]/f, sum["encode"]/f, (sum["sample"]+sum["decode"]+sum["batchd"]+sum["prompt"])/f, call/f,
			same, n, near, n,
			wer.Measure(strings.Join(refs, " "), strings.Join(cppHyps, " ")).WER()*100,
			wer.Measure(strings.Join(refs, " "), strings.Join(fwHyp, " ")).WER()*100)
	}
}

var phaseLine = regexp.MustCompile(`(\w+) time =\s+([0-9.]+) ms`)

// phaseTimes reads whisper_print_timings' lines: milliseconds per phase.
func phaseTimes(logged []string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range logged {
		if s := phaseLine.FindStringSubmatch(m); s != nil {
			if v, err := strconv.ParseFloat(s[2], 64); err == nil {
				out[s[1]] = v
			}
		}
	}
	return out
}

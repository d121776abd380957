package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy"
)

// qualityRoom is the VideoRoom of the alert quality benchmark.
const qualityRoom = 1602

// BenchmarkAlertQuality speaks the held-out half of the spoken set
// (testdata/spoken/spoken.jsonl: positives and look-alike negatives of
// every alerting category) with a speaker bot into a Janus room and runs
// the live pipeline (runAlertPipeline: ingest, transcription with the
// settled pass, the policy stage) over it. An alert belongs to the line
// whose schedule (±0.5 s) its matched words start in; per (line,
// category) it reports:
//
//   - alert_recall_live: labelled categories alerted by the live
//     revision, over all labelled categories;
//   - alert_recall_all_revisions: the same with alerts of any revision;
//   - alert_precision: alerted (line, category) pairs that are labelled,
//     over all alerted pairs, an alert outside every line counting as a
//     false one.
//
// It leaves out the final revision (it needs the session stored and
// ended). Goals: recall over all revisions ≥ 0.9, precision ≥ 0.9. Run it
// under the real-time lock.
func BenchmarkAlertQuality(b *testing.B) {
	f, err := os.Open("testdata/spoken/spoken.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	set, err := policy.ReadLabelled(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	set = slices.DeleteFunc(set, func(l policy.LabelledLine) bool { return l.Split != "heldout" })
	testbed.Require(b, testbed.Janus)
	tools := e2e.SpeechTools(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var items []speech.Item
	for _, l := range set {
		items = append(items, speech.Item{Kind: speech.KindSpeech, Text: l.Text}, speech.Item{Kind: speech.KindPause, DurMS: 2000})
	}
	clip, err := tools.Synthesize(ctx, items, filepath.Join(b.TempDir(), "spoken.ogg"))
	if err != nil {
		b.Fatal(err)
	}
	lines, es, _ := runAlertPipeline(b, ctx, qualityRoom, "policy-helper-quality", clip, len(set), time.Duration(len(set))*12*time.Second+time.Minute)
	b.StopTimer()

	live := make([]map[string]bool, len(set))
	all := make([]map[string]bool, len(set))
	for i := range set {
		live[i], all[i] = map[string]bool{}, map[string]bool{}
	}
	outside := 0
	for _, e := range es {
		if e.Type != event.TypeAlert || e.Timeline == nil {
			continue
		}
		var pl policy.AlertPayload
		if err := e.DecodePayload(&pl); err != nil {
			b.Fatal(err)
		}
		at := e.Timeline.Start()
		i := slices.IndexFunc(lines, func(l e2e.Line) bool {
			return !at.Before(l.SchedStart.Add(-500*time.Millisecond)) && !at.After(l.SchedEnd.Add(500*time.Millisecond))
		})
		if i < 0 {
			outside++
			continue
		}
		all[i][pl.Category] = true
		if pl.Pass == "" || pl.Pass == policy.PassLive {
			live[i][pl.Category] = true
		}
	}
	labelled, hitLive, hitAll, alertedPairs, truePairs := 0, 0, 0, outside, 0
	for i, l := range set {
		for _, c := range l.Labels {
			labelled++
			if live[i][c] {
				hitLive++
			}
			if all[i][c] {
				hitAll++
			}
		}
		for c := range all[i] {
			alertedPairs++
			if slices.Contains(l.Labels, c) {
				truePairs++
			}
		}
	}
	if labelled == 0 {
		b.Fatal("the held-out half has no positives")
	}
	precision := 1.0
	if alertedPairs > 0 {
		precision = float64(truePairs) / float64(alertedPairs)
	}
	b.Logf("%d held-out lines, %d labelled categories: %d alerted live, %d by any revision; %d alerted (line, category) pairs, %d right, %d alerts outside every line",
		len(set), labelled, hitLive, hitAll, alertedPairs, truePairs, outside)
	b.ReportMetric(float64(hitLive)/float64(labelled), "alert_recall_live")
	b.ReportMetric(float64(hitAll)/float64(labelled), "alert_recall_all_revisions")
	b.ReportMetric(precision, "alert_precision")
}

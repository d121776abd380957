package e2etest

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/transcribe/whispercpp"
)

// script is one speaker's part: a threat, then a phone number.
var script = []speech.Item{
	{Kind: speech.KindPause, DurMS: 2000},
	{Kind: speech.KindSpeech, Text: "I am going to kill you if you come back here."},
	{Kind: speech.KindPause, DurMS: 1500},
	{Kind: speech.KindSpeech, Text: "My number is three one two, five five five, zero one three nine. Call me after six."},
	{Kind: speech.KindPause, DurMS: 2000},
}

// timeTolerance is how far a transcript's timeline may lie outside the
// line it is matched to (cutting and chunking, not engine timing).
const timeTolerance = 500 * time.Millisecond

// TestE2EWhisperRun runs `earshot-whisper run` (whisper.cpp in process, the
// converted tiny.en, embedded broker, local store; no HTTP engine
// configured) in the sid root while a speaker bot says a threat and a phone
// number in a Janus room, and checks that:
//
//   - the effective configuration's engine is whisper, with no URL;
//   - every spoken line gets live, settled and final transcripts (the three
//     passes), all made by the whisper.cpp engine;
//   - the alerts the default policy finds in what the same engine hears
//     offline, on the same audio cut line by line, are raised (the threat
//     must be among them, or the test has nothing to check);
//   - the run stores segments and has no engine error, and stops cleanly
//     on SIGTERM.
func TestE2EWhisperRun(t *testing.T) {
	t0 := time.Now()
	r := newSidRun(t)
	const room, feed = 1960, 77
	janus := testbed.JanusServer(t)
	e2e.CreateRoom(t, janus, room)
	clip, err := e2e.SpeechTools(t).Synthesize(t.Context(), script, t.TempDir()+"/mallory.opus")
	if err != nil {
		t.Fatal(err)
	}

	// What the engine hears offline, and so the alerts it owes.
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	offline := r.offline(clipLines(t, map[string]speech.Clip{"mallory": clip}, 300*time.Millisecond))
	owed := map[string]string{} // category -> the offline text that holds it
	for _, name := range slices.Sorted(maps.Keys(offline)) {
		x := pol.Explain(offline[name], "en")
		fired := x.Fired()
		t.Logf("offline %s: %q (%d findings)", name, offline[name], len(fired))
		for _, c := range fired {
			owed[c.Category] = offline[name]
		}
	}
	if _, ok := owed["abuse.threat"]; !ok {
		t.Fatalf("whisper.cpp does not hear the threat offline (findings %v): the test has nothing to check", owed)
	}

	path := r.config(room)
	if engine, url, model := r.effectiveTranscribe(path); engine != "whisper" || url != "" || model != sidModel {
		t.Fatalf("effective transcribe config: engine %q url %q model_path %q; want whisper, no URL, %s", engine, url, model, sidModel)
	}
	r.start(path)
	r.waitLog("the ingest joining the room", 2*time.Minute, func(rec logRecord) bool { return rec.Msg == "room joined" })
	spk := &e2e.Speaker{Name: "mallory", Feed: feed, Clip: clip}
	e2e.Talk(t, janus, room, []*e2e.Speaker{spk}, 3*time.Minute)
	said := spk.Lines(t)
	if len(said) != 2 {
		t.Fatalf("the publish log has %d lines, want 2", len(said))
	}
	spoken := time.Now()
	// The room ends: so does the ingest's session, and the final pass
	// transcribes its stored audio.
	e2e.DestroyRoom(t, janus, room)

	// Each pass covers each line.
	passes := []string{"live", event.PassSettled, event.PassFinal}
	var trs []transcript
	covered := func(pass string) []bool {
		got := make([]bool, len(said))
		for _, tr := range trs {
			if tr.pass() != pass {
				continue
			}
			for i, l := range said {
				if tr.e.Timeline.Start().Before(l.End.Add(timeTolerance)) && tr.e.Timeline.End().After(l.Start.Add(-timeTolerance)) {
					got[i] = true
				}
			}
		}
		return got
	}
	e2e.WaitFor(t, "live, settled and final transcripts of every line", 6*time.Minute, func() bool {
		time.Sleep(time.Second) // each look reads the whole topic
		trs = r.transcripts()
		for _, p := range passes {
			if slices.Contains(covered(p), false) {
				return false
			}
		}
		return true
	})
	t.Logf("all three passes in %.1fs after the last line was sent", time.Since(spoken).Seconds())
	count := map[string]int{}
	for _, tr := range trs {
		count[tr.pass()]++
		if tr.e.Processing.Engine != whispercpp.Name || tr.e.Processing.Model != "tiny.en" {
			t.Errorf("transcript %s (%s pass) was made by %s/%s, want %s/tiny.en", tr.e.EventID, tr.pass(), tr.e.Processing.Engine, tr.e.Processing.Model, whispercpp.Name)
		}
	}
	t.Logf("transcripts by pass: %v", count)
	if count["other"] > 0 {
		t.Errorf("%d transcripts of no known pass", count["other"])
	}

	fig := r.stop()
	t.Logf("summary: %v", fig)
	for _, c := range slices.Sorted(maps.Keys(owed)) {
		if fig["alerts."+c] < 1 {
			t.Errorf("no %s alert, though whisper.cpp offline hears %q, which holds one", c, owed[c])
		}
	}
	if fig["segments_stored"] < 1 || fig["transcript_lines"] < 1 || fig["settled_transcript_lines"] < 1 {
		t.Errorf("summary: nothing stored or transcribed: %v", fig)
	}
	if fig["engine_errors"] != 0 {
		t.Errorf("summary: %d engine errors", fig["engine_errors"])
	}
	if strings.Contains(r.logs.String(), "remote server") {
		t.Error("earshot-whisper logged sending audio to a remote transcription server")
	}
	t.Logf("test took %.0fs", time.Since(t0).Seconds())
}

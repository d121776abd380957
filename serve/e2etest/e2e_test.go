// Package e2etest runs the moderator API at the end of the live pipeline
// on the test bed: a speaker bot in a real Janus VideoRoom (rooms
// 1500-1549 belong to this package), the ingest stage into versitygw and
// Kafka (the run's own topics), a transcription worker on the Whisper
// fixture, the policy stage with the default policy, and `earshot serve`.
package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/record/opus"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
	"github.com/earshot/earshot/storage/crypt"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

const (
	room     = 1500
	feed     = 77
	opToken  = "e2e-operator-token-0123456789"
	ctxWidth = 10 * time.Second // the API's default evidence context
)

// script: 11 s of silence on each side, so that the evidence window (the
// alert ± 10 s) lies wholly inside the recorded track.
var script = []speech.Item{
	{Kind: speech.KindPause, DurMS: 11000},
	{Kind: speech.KindSpeech, Text: "I am going to kill you if you come back here."},
	{Kind: speech.KindPause, DurMS: 1200},
	{Kind: speech.KindSpeech, Text: "My number is three one two, five five five, zero one three nine. Call me after six."},
	{Kind: speech.KindPause, DurMS: 11000},
}

// pipeline is every stage of one run.
type pipeline struct {
	t       *testing.T
	pol     *policy.Policy // the policy stage's
	brokers bus.Cluster
	topics  e2e.Topics
	keys    *crypt.Memory
	eng     transcribe.Engine
	logs    *testbed.SyncBuffer
	log     *slog.Logger
	prod    *bus.Producer
}

func (p *pipeline) consumer(name, topic string) *bus.Consumer {
	p.t.Helper()
	c, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: p.brokers, GroupID: "earshot-serve-e2e-" + name + "-" + e2e.RandHex(4),
		Topics: []string{p.topics.Of(topic)}, StartOffset: bus.FirstOffset, SessionTimeout: 10 * time.Second,
		HeartbeatInterval: time.Second, RebalanceTimeout: 20 * time.Second, DrainTimeout: 5 * time.Second, Logger: p.log.With("stage", name)})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// run starts a stage and stops it when the test ends.
func (p *pipeline) run(name string, r func(context.Context) error, closeFn func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				p.t.Errorf("%s: %v", name, err)
			}
		case <-time.After(time.Minute):
			p.t.Errorf("%s did not stop", name)
		}
		_ = closeFn()
	})
}

func TestE2EEvidence(t *testing.T) {
	brokers := bustest.Kafka(t)
	testbed.Require(t, testbed.Janus)
	p := &pipeline{t: t, brokers: brokers, keys: crypt.NewMemory(), logs: &testbed.SyncBuffer{}}
	p.log = slog.New(slog.NewJSONHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pipeline log (last 60 lines):\n%s", e2e.Tail(p.logs.String(), 60))
		}
	})
	var err error
	if p.eng, err = httpengine.New(httpengine.Config{BaseURL: testbed.WhisperURL(t), Model: "tiny.en", Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	p.topics = e2e.NewTopics(t, brokers, "earshot-serve-e2e", 3)
	if p.prod, err = bus.NewProducer(bus.ProducerConfig{Cluster: brokers, Logger: p.log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.prod.Close() })
	janusEP := testbed.JanusServer(t)
	e2e.CreateRoom(t, janusEP, room)

	clipCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	clip, err := e2e.SpeechTools(t).Synthesize(clipCtx, script, t.TempDir()+"/speaker.opus")
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// Transcription worker.
	wcons := p.consumer("transcribe", event.TopicAudio)
	w, err := transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: wcons, Sender: p.prod, Engine: p.eng, Language: "en",
		Producer: event.Producer{Name: "earshot-transcribe", Version: "e2e"}, Keys: p.keys, Logger: p.log.With("stage", "transcribe"),
		Topics: transcribe.Topics{Transcripts: p.topics.Of(event.TopicTranscripts), DeadLetter: p.topics.Of(event.TopicDeadLetter),
			Ops: p.topics.Of(event.TopicOps)},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.run("transcribe", w.Run, w.Close)

	// Policy stage with the default policy.
	p.pol = anySpeechPolicy(t)
	ps, err := policy.NewStage(policy.StageConfig{
		Consumer: p.consumer("policy", event.TopicTranscripts), Sender: p.prod, Policy: policy.Fixed{P: p.pol},
		Producer: event.Producer{Name: "earshot-policy", Version: "e2e"}, Keys: p.keys, Logger: p.log.With("stage", "policy"),
		Topics: policy.Topics{Transcripts: p.topics.Of(event.TopicTranscripts), Alerts: p.topics.Of(event.TopicAlerts),
			DeadLetter: p.topics.Of(event.TopicDeadLetter)},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.run("policy", ps.Run, ps.Close)

	// Ingest, with 10 s segments so that the evidence is cut across
	// segment boundaries.
	ing := e2e.StartIngest(t, e2e.IngestConfig{Room: room, Cluster: brokers, Topics: p.topics, Keys: p.keys, SegmentDuration: 10 * time.Second})

	// The moderator API.
	links, err := serve.NewLinkSigner([]byte("e2e-link-key-0123456789abcdef"), "http://earshot.invalid", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	idx := serve.NewIndex(1000)
	srv, err := serve.New(serve.Config{
		Listen: "127.0.0.1:0", Store: ing.Store, Keys: p.keys, Sender: p.prod, ActionsTopic: p.topics.Of(event.TopicAlertActions),
		Producer: event.Producer{Name: "earshot-serve", Version: "e2e"},
		Audit:    &serve.KafkaAuditor{Sender: p.prod, Topic: p.topics.Of(event.TopicAudit), Producer: event.Producer{Name: "earshot-serve", Version: "e2e"}},
		Links:    links, Operators: []serve.Operator{{Name: "alice", TokenHash: serve.HashToken(opToken)}}, Index: idx,
		Tail: &serve.Tail{Cluster: brokers, Topics: []string{p.topics.Of(event.TopicAlerts), p.topics.Of(event.TopicAlertActions)},
			Apply: func(e *event.Envelope) { idx.Apply(e) }, Logger: p.log},
		Logger: p.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.run("serve", srv.Run, srv.Close)
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	addr, err := srv.Addr(actx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	api := &client{t: t, base: "http://" + addr}

	// Speak.
	ing.WaitJoined()
	spk := &e2e.Speaker{Name: "mallory", Feed: feed, Clip: clip}
	e2e.Talk(t, janusEP, room, []*e2e.Speaker{spk}, 3*time.Minute)
	ing.WaitTracksEnded()
	ing.Stop() // the spool drains: every segment is in the bucket
	speakerP := ing.Speaker(feed)

	// The alerts the pipeline owes: those the policy finds in the
	// transcripts it wrote (what the model heard is its input here).
	// Whether a machine's tiny.en hears the threat, or the phone number
	// as ten digits, is the model's, so their alerts are checked where
	// they are owed; the any-speech rule's alert is owed whenever a line
	// was transcribed at all, so the evidence path is always checked.
	said := spk.Lines(t)
	if len(said) == 0 {
		t.Fatal("the publish log has no line")
	}
	owed := owedFindings(t, p, said[len(said)-1].Start)
	flagged := map[string]int{"abuse.threat": 0, "pii.phone": 1, e2e.AnySpeechCategory: -1} // the script line each is about (-1: any)
	var want []string
	for _, c := range slices.Sorted(maps.Keys(flagged)) {
		if text, ok := owed[c]; ok {
			want = append(want, c)
			t.Logf("the transcript %q holds a %s finding", text, c)
		} else {
			t.Logf("no transcript holds a %s finding: its alert is not owed in this run", c)
		}
	}
	if !slices.Contains(want, e2e.AnySpeechCategory) {
		t.Fatalf("no transcript has a word (findings %v): the pipeline transcribed nothing of the speech", owed)
	}
	var alerts []serve.AlertView
	e2e.WaitFor(t, fmt.Sprintf("alerts of %v", want), 3*time.Minute, func() bool {
		var out struct{ Alerts []serve.AlertView }
		if code := api.getJSON("/alerts?room="+ing.RoomP, opToken, &out); code != http.StatusOK {
			return false
		}
		alerts = out.Alerts
		cats := map[string]bool{}
		for _, a := range alerts {
			cats[a.Category] = true
		}
		for _, c := range want {
			if !cats[c] {
				return false
			}
		}
		return true
	})
	for _, l := range said {
		t.Logf("said %s–%s: %q", l.Start.Format("15:04:05.000"), l.End.Format("15:04:05.000"), l.Text)
	}
	var cues []speech.Cue
	for _, c := range clip.Cues {
		if c.Kind == speech.KindSpeech {
			cues = append(cues, c)
		}
	}
	if len(said) != len(cues) {
		t.Fatalf("the publish log has %d lines, the script %d", len(said), len(cues))
	}
	seen := map[string]bool{}
	for _, a := range alerts {
		line, ok := flagged[a.Category]
		if !ok {
			t.Logf("other alert: %s %s", a.Category, a.RuleID)
			continue
		}
		if seen[a.Category] {
			continue
		}
		seen[a.Category] = true
		if line < 0 {
			line = lineOf(said, a)
		}
		t.Run(a.Category, func(t *testing.T) {
			api.t = t
			checkAlert(t, api, links, a, speakerP, said[line], cues[line], clip.Path, p.eng)
		})
	}

	// The refusals above are in the audit topic, without any token.
	api.t = t
	evs, _ := e2e.Events(t, brokers, p.topics.Of(event.TopicAudit))
	var denied, ok int
	for _, e := range evs {
		var en event.AuditEntry
		if err := e.DecodePayload(&en); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Payload), opToken) {
			t.Errorf("an audit entry contains the operator token: %s", e.Payload)
		}
		switch en.Outcome {
		case serve.OutcomeDenied:
			denied++
		case serve.OutcomeOK:
			ok++
		}
	}
	if denied < 4 || ok < 4 {
		t.Errorf("audit topic holds %d denied and %d allowed entries, want at least 4 of each", denied, ok)
	}
}

// lineOf returns the publish log's line that overlaps the alert most.
func lineOf(said []e2e.Line, a serve.AlertView) int {
	best, most := 0, time.Duration(-1)
	for i, l := range said {
		end, start := l.End, l.Start
		if a.End.Before(end) {
			end = a.End
		}
		if a.Start.After(start) {
			start = a.Start
		}
		if o := end.Sub(start); o > most {
			best, most = i, o
		}
	}
	return best
}

// anySpeechPolicy is the default policy with e2e.AnySpeechRule added.
func anySpeechPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Parse(append(policy.DefaultYAML(), e2e.AnySpeechRule...), policy.Source{Name: "default policy with the any-speech rule"})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// alignTolerance is how far an alert may lie outside its line in the
// publish log: timelines are anchored at arrival, and Whisper's word times
// come in 20 ms steps and may overhang a little.
const alignTolerance = 500 * time.Millisecond

// placeTolerance bounds how far the evidence audio may start from where
// the publish log puts it: both ends stamp the same packets (the bot as it
// sends, the recorder's timeline as they arrive, over the test bed's
// loopback), so they agree within a millisecond on an idle machine; five
// packets of slack leave room for a loaded one.
const placeTolerance = 100 * time.Millisecond

// checkAlert checks one alert end to end: speaker, place on the timeline
// (the flagged line's in the publish log), excerpt, the audio through a
// signed link (its window, length and bytes: the clip's own packets,
// holding the whole flagged line), refusals and an action. What the model
// heard is the pipeline's input here, never the check: the excerpt must
// hold the words the alert matched, however the model wrote them.
func checkAlert(t *testing.T, api *client, links *serve.LinkSigner, a serve.AlertView, speaker string, line e2e.Line, cue speech.Cue, clipPath string, eng transcribe.Engine) {
	if a.Speaker != speaker {
		t.Errorf("alert speaker %s, want %s", a.Speaker, speaker)
	}
	if a.Start.Before(line.Start.Add(-alignTolerance)) || a.End.After(line.End.Add(alignTolerance)) {
		t.Errorf("alert at %s–%s, outside its line's %s–%s in the publish log (±%v)", a.Start.Format("15:04:05.000"), a.End.Format("15:04:05.000"),
			line.Start.Format("15:04:05.000"), line.End.Format("15:04:05.000"), alignTolerance)
	}
	var doc serve.EvidenceDoc
	if code := api.getJSON("/evidence/"+a.ID, opToken, &doc); code != http.StatusOK {
		t.Fatalf("evidence document: status %d", code)
	}
	var excerpt []string
	for _, l := range doc.Excerpt {
		excerpt = append(excerpt, l.Text)
	}
	t.Logf("%s (%s): text %q, value %q, excerpt %q", a.Category, a.RuleID, doc.Text, doc.Value, excerpt)
	// Both sides normalised alike (digits and number words: "three one
	// two" and "312" compare equal), so the check holds however the model
	// spelt the number.
	// Substrings, since normalising joins a number's digit groups with any
	// digits the excerpt has beside them; and letters and digits only, since
	// the matched text is the policy's normalised view of the words, spaced
	// and joined across segments its own way ("312. / 5 .5" for the words
	// "312." and "5.5,").
	matched := lettersAndDigits(wer.Normalize(doc.Text))
	if matched == "" || !strings.Contains(lettersAndDigits(wer.Normalize(strings.Join(excerpt, " "))), matched) {
		t.Errorf("excerpt %q lacks the matched words %q", excerpt, doc.Text)
	}

	// The audio through a signed link, as a notification carries it.
	link, _ := links.Link(a.ID)
	tok := link[strings.Index(link, "?t=")+3:]
	resp, ogg := api.get("/evidence/"+a.ID+"/audio.ogg?t="+tok, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audio through a signed link: status %d: %s", resp.StatusCode, ogg)
	}
	first, _ := strconv.ParseInt(resp.Header.Get("X-Earshot-First-Sample"), 10, 64)
	last, _ := strconv.ParseInt(resp.Header.Get("X-Earshot-Last-Sample"), 10, 64)
	ctxS := event.DurationToSamples(ctxWidth)
	if first != a.FirstSample-ctxS || last != a.LastSample+ctxS {
		t.Errorf("audio covers samples %d-%d, want the alert's %d-%d ± %v", first, last, a.FirstSample, a.LastSample, ctxWidth)
	}
	pcm := evidencetest.Decode16k(t, ogg)
	window := time.Duration(a.LastSample-a.FirstSample+1+2*ctxS) * time.Second / event.SampleRate
	got := time.Duration(len(pcm)) * time.Second / opus.SampleRate
	t.Logf("audio: %d bytes, decodes to %v; window %v", len(ogg), got, window)
	if got < window-20*time.Millisecond || got > window+20*time.Millisecond {
		t.Errorf("audio decodes to %v, want the window's %v", got, window)
	}
	// The bytes: the clip's own packets, holding the whole flagged line,
	// with the alert where the line was said.
	in := evidenceInClip(t, clipPath, ogg)
	said := cueSpan(cue)
	alert := clipSpan{first: in.first + ctxS, end: in.end - ctxS}
	tol := event.DurationToSamples(alignTolerance)
	t.Logf("the evidence is clip samples %d-%d; the line %d-%d; the alert %d-%d", in.first, in.end, said.first, said.end, alert.first, alert.end)
	// Where the publish log puts the window: the line's first sample left
	// the bot at line.Start, so the window's start (the alert's start less
	// the context) is that far from the line's start in the clip.
	want := said.first + event.DurationToSamples(a.Start.Add(-ctxWidth).Sub(line.Start))
	off := event.SamplesToDuration(in.first - want)
	t.Logf("the evidence starts %v from where the publish log puts it", off)
	if off.Abs() > placeTolerance {
		t.Errorf("the evidence audio starts %v from where the publish log puts the alert's window (±%v): misplaced", off, placeTolerance)
	}
	if !in.contains(said) {
		t.Errorf("the evidence audio (clip samples %d-%d) does not hold the whole flagged line (%d-%d)", in.first, in.end, said.first, said.end)
	}
	if !(clipSpan{first: said.first - tol, end: said.end + tol}).contains(alert) {
		t.Errorf("in the evidence audio the alert is at clip samples %d-%d, outside its line's %d-%d (±%v)", alert.first, alert.end, said.first, said.end, alignTolerance)
	}
	// What the engine hears in the evidence is logged for a reader; it is
	// the model's, and the bytes above already show the line is there.
	tctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	res, err := eng.Transcribe(tctx, transcribe.Audio{Samples: pcm, Language: "en"})
	cancel()
	if err != nil {
		t.Fatalf("transcribe the evidence: %v", err)
	}
	var text []string
	for _, s := range res.Segments {
		text = append(text, s.Text)
	}
	t.Logf("the evidence audio transcribes as %q", strings.Join(text, " "))

	// Without a valid token: refused.
	for _, tc := range []struct{ path, bearer string }{
		{"/evidence/" + a.ID + "/audio.ogg", ""},
		{"/evidence/" + a.ID, "wrong-token-0123456789"},
		{"/evidence/" + a.ID + "/audio.ogg?t=" + links.Token("evt_other", time.Now().Add(time.Minute)), ""},
		{"/evidence/" + a.ID + "?t=" + tok[:len(tok)-2], ""},
	} {
		if resp, _ := api.get(tc.path, tc.bearer); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", tc.path, resp.StatusCode)
		}
	}

	// An action goes to the actions topic and comes back through the tail.
	body, _ := json.Marshal(map[string]string{"action": "confirm", "note": "checked the audio"})
	if resp, b := api.do("POST", "/alerts/"+a.ID+"/actions", opToken, bytes.NewReader(body)); resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm: status %d: %s", resp.StatusCode, b)
	}
	e2e.WaitFor(t, "the confirmation shows in the list", time.Minute, func() bool {
		var out struct{ Alerts []serve.AlertView }
		api.getJSON("/alerts?status=confirmed", opToken, &out)
		return slices.ContainsFunc(out.Alerts, func(v serve.AlertView) bool { return v.ID == a.ID })
	})
}

type client struct {
	t    *testing.T
	base string
}

func (c *client) do(method, path, bearer string, body io.Reader) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

func (c *client) get(path, bearer string) (*http.Response, []byte) {
	return c.do("GET", path, bearer, nil)
}

func (c *client) getJSON(path, bearer string, v any) int {
	c.t.Helper()
	resp, b := c.get(path, bearer)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// lettersAndDigits keeps only the letters and digits of s.
func lettersAndDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

// Package browsertest drives the moderator console in Debian's chromium
// (headless, through the DevTools protocol with chromedp) at the end of
// the live pipeline on the test bed: a speaker bot in a real Janus
// VideoRoom (rooms 1870-1879 belong to this package), the ingest stage
// into versitygw and Kafka (the run's own topics), a transcription worker
// on the Whisper fixture, the policy stage with the default policy, and
// `earshot serve` with its console. It is real-time: run it under the
// test bed's lock.
package browsertest

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/storage/crypt"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// axe-core from npm (testdata/axe-core/README.md: version, licence).
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

const (
	room        = 1870
	feed        = 78
	aliceToken  = "browser-alice-token-0123456789" // moderator, every room
	carolToken  = "browser-carol-token-0123456789" // admin
	bobToken    = "browser-bob-token-0123456789"   // moderator of another room only
	coraToken   = "browser-cora-token-0123456789"  // compliance
	ackNote     = "Looking into it."
	note        = "Clear threat of violence; escalated to the safety team."
	dismissNote = "Duplicate of the ticket filed by the room's host."
)

// script: a threat between pauses, so the evidence window has context on
// both sides.
var script = []speech.Item{
	{Kind: speech.KindPause, DurMS: 4000},
	{Kind: speech.KindSpeech, Text: "I am going to kill you if you come back here."},
	{Kind: speech.KindPause, DurMS: 6000},
}

// offsetClock is the server's clock, moved forward to expire sessions.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// run starts a stage and stops it when the test ends.
func run(t *testing.T, name string, r func(context.Context) error, closeFn func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(time.Minute):
			t.Errorf("%s did not stop", name)
		}
		_ = closeFn()
	})
}

func TestConsoleInBrowser(t *testing.T) {
	began := time.Now()
	chrome := testbed.RequireTool(t, "chromium")
	brokers := bustest.Kafka(t)
	testbed.Require(t, testbed.Janus)
	logs := &testbed.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pipeline log (last 60 lines):\n%s", e2e.Tail(logs.String(), 60))
		}
		t.Logf("browser test took %v", time.Since(began).Round(time.Second))
	})
	keys := crypt.NewMemory()
	topics := e2e.NewTopics(t, brokers, "earshot-console-e2e", 3)
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	consumer := func(name string, topic ...string) *bus.Consumer {
		var of []string
		for _, tp := range topic {
			of = append(of, topics.Of(tp))
		}
		c, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "earshot-console-e2e-" + name + "-" + e2e.RandHex(4),
			Topics: of, StartOffset: bus.FirstOffset, SessionTimeout: 10 * time.Second,
			HeartbeatInterval: time.Second, RebalanceTimeout: 20 * time.Second, DrainTimeout: 5 * time.Second, Logger: log.With("stage", name)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	janusEP := testbed.JanusServer(t)
	e2e.CreateRoom(t, janusEP, room)
	clipCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	clip, err := e2e.SpeechTools(t).Synthesize(clipCtx, script, t.TempDir()+"/speaker.opus")
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// The pipeline: transcription, policy, ingest.
	eng, err := httpengine.New(httpengine.Config{BaseURL: testbed.WhisperURL(t), Model: "tiny.en", Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	w, err := transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: consumer("transcribe", event.TopicAudio), Sender: prod, Engine: eng, Language: "en",
		Producer: event.Producer{Name: "earshot-transcribe", Version: "e2e"}, Keys: keys, Logger: log.With("stage", "transcribe"),
		Topics: transcribe.Topics{Transcripts: topics.Of(event.TopicTranscripts), DeadLetter: topics.Of(event.TopicDeadLetter),
			Ops: topics.Of(event.TopicOps)},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "transcribe", w.Run, w.Close)
	// The default policy and a rule that flags any transcribed line: an
	// alert is owed whether or not tiny.en hears the threat.
	pol, err := policy.Parse(append(policy.DefaultYAML(), e2e.AnySpeechRule...), policy.Source{Name: "default policy with the any-speech rule"})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := policy.NewStage(policy.StageConfig{
		Consumer: consumer("policy", event.TopicTranscripts), Sender: prod, Policy: policy.Fixed{P: pol},
		Producer: event.Producer{Name: "earshot-policy", Version: "e2e"}, Keys: keys, Logger: log.With("stage", "policy"),
		Topics: policy.Topics{Transcripts: topics.Of(event.TopicTranscripts), Alerts: topics.Of(event.TopicAlerts),
			DeadLetter: topics.Of(event.TopicDeadLetter)},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "policy", ps.Run, ps.Close)
	ing := e2e.StartIngest(t, e2e.IngestConfig{Room: room, Cluster: brokers, Topics: topics, Keys: keys, SegmentDuration: 10 * time.Second})
	// The compliance archive: the alert page reads its transcript
	// revisions from it, exports read it.
	arch, err := archive.New(archive.Config{Consumer: consumer("archive", archive.Topics...), Store: ing.Store, Keys: keys, Logger: log.With("stage", "archive")})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "archive", arch.Run, arch.Close)

	// earshot serve with its console.
	clk := &offsetClock{}
	links, err := serve.NewLinkSigner([]byte("console-e2e-link-key-0123456789"), "http://earshot.invalid", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	idx := serve.NewIndex(1000)
	live := serve.NewLive(clk.Now)
	auditTopic := topics.Of(event.TopicAudit)
	comp, exportKey := complianceBackend(t, ing, keys, prod, auditTopic)
	srv, err := serve.New(serve.Config{
		Listen: "127.0.0.1:0", Store: ing.Store, Keys: keys, Sender: prod, ActionsTopic: topics.Of(event.TopicAlertActions),
		Producer: event.Producer{Name: "earshot-serve", Version: "e2e"},
		Audit:    &serve.KafkaAuditor{Sender: prod, Topic: auditTopic, Producer: event.Producer{Name: "earshot-serve", Version: "e2e"}},
		Links:    links,
		Operators: []serve.Operator{
			{Name: "alice", TokenHash: serve.HashToken(aliceToken), Role: serve.RoleModerator},
			{Name: "carol", TokenHash: serve.HashToken(carolToken), Role: serve.RoleAdmin},
			{Name: "bob", TokenHash: serve.HashToken(bobToken), Rooms: []string{ing.Pseud.Room("1879")}},
			{Name: "cora", TokenHash: serve.HashToken(coraToken), Role: serve.RoleCompliance},
		},
		Index: idx,
		Tail: &serve.Tail{Cluster: brokers, Topics: []string{topics.Of(event.TopicAlerts), topics.Of(event.TopicAlertActions)},
			Apply: func(e *event.Envelope) { idx.Apply(e) }, Logger: log},
		Live: live, LiveTail: &serve.Tail{Cluster: brokers, Topics: []string{topics.Of(event.TopicLifecycle), topics.Of(event.TopicSegments),
			topics.Of(event.TopicTranscripts)}, Apply: live.Apply, Logger: log, FromEnd: true},
		Compliance: comp, Logger: log, Now: clk.Now,
		Console: serve.ConsoleConfig{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "serve", srv.Run, srv.Close)
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	addr, err := srv.Addr(actx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr

	// Three browsers (own profiles, so own cookies): alice works the
	// queue, carol watches it in a second session, bob is limited to
	// another room.
	alice, carol, bob := newTab(t, chrome, base, "alice"), newTab(t, chrome, base, "carol"), newTab(t, chrome, base, "bob")
	alice.do(chromedp.Navigate(base + "/console/signin"))
	alice.checkPage("sign-in")
	for _, b := range []struct {
		tab *tab
		tok string
	}{{alice, aliceToken}, {carol, carolToken}, {bob, bobToken}} {
		b.tab.signIn(b.tok)
		b.tab.do(chromedp.Navigate(base + "/console/?status=all"))
		b.tab.waitJS("the live stream connected", `/connected|updated/.test(document.getElementById('live-state').textContent)`, 30*time.Second)
	}
	alice.checkPage("empty queue")
	evalJS[chromedp.Void](alice, `window.earshotLoaded = 1`)

	// Speak; the alert arrives in the open queue without a reload.
	ing.WaitJoined()
	spk := &e2e.Speaker{Name: "mallory", Feed: feed, Clip: clip}
	e2e.Talk(t, janusEP, room, []*e2e.Speaker{spk}, 3*time.Minute)
	alice.waitJS("an alert row in the live queue", `document.querySelectorAll('#queue tbody tr[data-id]').length > 0`, 3*time.Minute)
	if evalJS[int](alice, `window.earshotLoaded || 0`) != 1 {
		t.Fatal("the queue page was reloaded: the alert did not arrive live")
	}
	ids := evalJS[[]string](alice, `Array.from(document.querySelectorAll('#queue tbody tr[data-id]')).map(r => r.dataset.id)`)
	target := ids[len(ids)-1] // the oldest
	alice.checkPage("queue with alerts")

	// The live rooms page lists the room; its page shows the speaker and
	// what was said.
	alice.do(chromedp.Navigate(base + "/console/rooms"))
	alice.checkPage("live rooms")
	alice.do(chromedp.Click(`a[href="/console/rooms/` + ing.RoomP + `"]`))
	alice.waitJSAcrossLoads("the room's live transcript", `document.querySelectorAll('.transcript li .text').length > 0`, 30*time.Second)
	if spk := evalJS[string](alice, `document.querySelector('.transcript li .spk').title`); spk != ing.Speaker(feed) {
		t.Errorf("live transcript line by %s, want the speaker's pseudonym %s", spk, ing.Speaker(feed))
	}
	alice.checkPage("live room")
	ing.WaitTracksEnded()
	ing.Stop() // every segment is in the bucket: the evidence can be cut
	alice.do(chromedp.Navigate(base + "/console/?status=all"))
	alice.waitJS("the queue", `document.querySelectorAll('#queue tbody tr[data-id]').length >= `+strconv.Itoa(len(ids)), 30*time.Second)
	ids = evalJS[[]string](alice, `Array.from(document.querySelectorAll('#queue tbody tr[data-id]')).map(r => r.dataset.id)`)
	target = ids[len(ids)-1]

	// Keyboard: j/k move the selection, Enter opens the selected alert.
	alice.do(chromedp.Click("h1"))
	sel := func() string { return evalJS[string](alice, `document.querySelector('#queue tr.selected').dataset.id`) }
	if sel() != ids[0] {
		t.Fatalf("first row not selected on load")
	}
	if len(ids) > 1 {
		alice.do(chromedp.KeyEvent("j"))
		if got := sel(); got != ids[1] {
			t.Errorf("j selected %s, want the second row %s", got, ids[1])
		}
		alice.do(chromedp.KeyEvent("k"))
		if got := sel(); got != ids[0] {
			t.Errorf("k selected %s, want the first row %s", got, ids[0])
		}
	}
	for range len(ids) - 1 {
		alice.do(chromedp.KeyEvent("j"))
	}
	if got := sel(); got != target {
		t.Fatalf("j moved to %s, want the oldest row %s", got, target)
	}
	// Acknowledge from the queue, by keyboard: the row's status changes
	// here and in the second session.
	alice.act("a", ackNote)
	alice.waitJS("the row acknowledged", statusIs(target, "acknowledged"), 30*time.Second)
	carol.waitJS("the acknowledged status in carol's queue", statusIs(target, "acknowledged"), 30*time.Second)
	if got := sel(); got != target {
		t.Errorf("after the action the selection is %s, want it kept on %s", got, target)
	}
	// The archive holds the room's transcripts before the page opens, so
	// that its transcript is the archived one (checked in the audit
	// entry below).
	waitArchived(t, ing, idx, target)
	alice.do(chromedp.KeyEvent("\r"))
	alice.waitJSAcrossLoads("the alert page", `!!document.getElementById('alert') && document.getElementById('alert').dataset.alert === '`+target+`'`, 30*time.Second)
	alice.checkPage("alert page")

	// The evidence plays, as long as the cut the API serves.
	want := apiAudioDuration(t, base, target)
	alice.waitJS("the audio's metadata", `document.getElementById('player').readyState >= 1`, 30*time.Second)
	got := evalJS[float64](alice, `document.getElementById('player').duration`)
	t.Logf("audio element duration %.3f s, evidence cut %.3f s", got, want.Seconds())
	if d := got - want.Seconds(); d > 0.5 || d < -0.5 {
		t.Errorf("audio element duration %.3f s, the evidence cut is %.3f s", got, want.Seconds())
	}
	played := evalJS[float64](alice, `(async () => { const p = document.getElementById('player'); await p.play();
		await new Promise(r => setTimeout(r, 1500)); p.pause(); return p.currentTime; })()`)
	if played < 0.5 {
		t.Errorf("the audio played to %.2f s after 1.5 s", played)
	}
	// Clicking a transcript line seeks the player there.
	seek := evalJS[[]float64](alice, `(async () => { const b = document.querySelector('button.seek'); b.click();
		await new Promise(r => setTimeout(r, 300)); const p = document.getElementById('player'); p.pause();
		return [parseFloat(b.dataset.offset), p.currentTime]; })()`)
	if d := seek[1] - seek[0]; d < -0.05 || d > 1 {
		t.Errorf("clicking a line at %.2f s put the player at %.2f s", seek[0], seek[1])
	}

	// Confirm with a note, by keyboard.
	alice.act("c", note)
	alice.waitJSAcrossLoads("the alert confirmed", `document.getElementById('alert-status').textContent === 'confirmed'`, 30*time.Second)
	if h := evalJS[string](alice, `document.getElementById('history').parentElement.textContent`); !strings.Contains(h, note) || !strings.Contains(h, "alice") {
		t.Errorf("history lacks the action and its note: %q", h)
	}
	// A state-changing request without the CSRF token is refused.
	if code := evalJS[int](alice, `fetch('/console/alerts/`+target+`/actions', {method: 'POST', body: new URLSearchParams({action: 'dismiss'})}).then(r => r.status)`); code != http.StatusUnauthorized {
		t.Errorf("POST without a CSRF token: status %d, want 401", code)
	}

	// The second session sees the change live.
	carol.waitJS("the confirmed status in carol's queue", statusIs(target, "confirmed"), 30*time.Second)
	// Dismiss, by keyboard, on the alert page.
	alice.act("d", dismissNote)
	alice.waitJSAcrossLoads("the alert dismissed", `document.getElementById('alert-status').textContent === 'dismissed'`, 30*time.Second)
	if h := evalJS[string](alice, `Array.from(document.querySelectorAll('#history ~ table tbody tr')).map(r => r.textContent).join('\n')`); !inOrder(h, "ack", ackNote, "confirm", note, "dismiss", dismissNote) {
		t.Errorf("history lacks the three actions and notes in order: %q", h)
	}
	carol.waitJS("the dismissed status in carol's queue", statusIs(target, "dismissed"), 30*time.Second)
	carol.do(chromedp.Navigate(base + "/console/sessions"))
	carol.checkPage("sessions")

	// bob, limited to another room, saw queue updates but never the alert,
	// and cannot reach it by URL or by the evidence endpoint.
	if evalJS[bool](bob, `!!document.querySelector('#queue tr[data-id="`+target+`"]')`) {
		t.Error("bob's live queue shows another room's alert")
	}
	if !evalJS[bool](bob, `document.getElementById('live-state').textContent.includes('updated')`) {
		t.Error("bob's stream sent no update while the alert arrived and changed: it was not exercised")
	}
	resp := bob.navigate(base + "/console/alerts/" + target)
	if resp != http.StatusNotFound || strings.Contains(evalJS[string](bob, `document.body.textContent`), "kill") {
		t.Errorf("bob opening another room's alert: status %d", resp)
	}
	bob.checkPage("not found")
	for _, p := range []string{"/evidence/" + target, "/evidence/" + target + "/audio.ogg"} {
		if code := apiStatus(t, base+p, bobToken); code != http.StatusNotFound {
			t.Errorf("bob on %s: status %d, want 404", p, code)
		}
	}

	complianceInBrowser(t, chrome, base, ing.RoomP, comp, exportKey, alice, carol)

	// An expired session is refused: 13 hours later (past the 12-hour
	// absolute timeout) carol is sent to the sign-in form.
	clk.Add(13 * time.Hour)
	carol.navigate(base + "/console/")
	if loc := evalJS[string](carol, `location.pathname`); loc != "/console/signin" {
		t.Errorf("expired session: at %s, want the sign-in form", loc)
	}

	// The audit log: one entry per page and per stream, none per row or
	// byte range.
	evs, _ := e2e.Events(t, brokers, auditTopic)
	count := map[string]int{}
	for _, e := range evs {
		var en event.AuditEntry
		if err := e.DecodePayload(&en); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{aliceToken, bobToken, carolToken} {
			if strings.Contains(string(e.Payload), tok) {
				t.Errorf("an audit entry holds a token: %s", e.Payload)
			}
		}
		k := en.Operator + " " + en.Action + " " + en.Outcome
		if en.Subject == target {
			k += " target"
		}
		if en.Action == serve.AuditAlertAction {
			k += " " + en.Detail
		}
		count[k]++
		if en.Action == serve.AuditConsoleAlert && en.Operator == "alice" && strings.Contains(en.Detail, "from the archive") {
			count["alice console.alert from the archive"]++
		}
	}
	t.Logf("audit entries: %v", count)
	for k, n := range map[string]int{
		"alice console.alert ok target":        3, // opened, then reloaded after each action on the page
		"alice alert.action ok target ack":     1,
		"alice alert.action ok target confirm": 1,
		"alice alert.action ok target dismiss": 1,
		"alice console.alert from the archive": 3,
		"bob console.alert denied target":      1,
		"alice console.signin ok":              1,
		"carol console.signin ok":              1,
		"bob console.signin ok":                1,
		"cora console.signin ok":               1,
		"cora hold.set ok":                     1,
		"cora hold.lift ok":                    1,
		"cora export ok":                       1,
		"alice console.compliance denied":      3, // the page, a hold and an export posted directly
	} {
		if count[k] != n {
			t.Errorf("%d audit entries %q, want %d", count[k], k, n)
		}
	}
	for _, who := range []string{"alice", "carol", "bob"} {
		if count[who+" console.queue ok"] < 2 { // the page and its stream
			t.Errorf("%s: %d console.queue entries, want the page and the stream", who, count[who+" console.queue ok"])
		}
	}
}

// apiAudioDuration is the length of the evidence cut the API serves for
// an alert (its sample range).
func apiAudioDuration(t *testing.T, base, id string) time.Duration {
	req, err := http.NewRequest("GET", base+"/evidence/"+id+"/audio.ogg", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("evidence audio: status %d", resp.StatusCode)
	}
	first, err1 := strconv.ParseInt(resp.Header.Get("X-Earshot-First-Sample"), 10, 64)
	last, err2 := strconv.ParseInt(resp.Header.Get("X-Earshot-Last-Sample"), 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("evidence audio without its sample range")
	}
	return event.SamplesToDuration(last - first + 1)
}

func apiStatus(t *testing.T, u, token string) int {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// tab is one headless chromium with its own profile.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	name string
}

func newTab(t *testing.T, chrome, base, name string) *tab {
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		// Nothing but the server under test: no name resolves.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	return &tab{t: t, ctx: ctx, base: base, name: name}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", b.name, err)
	}
}

// navigate opens u and returns the HTTP status of the page.
func (b *tab) navigate(u string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.t.Fatalf("%s: navigate %s: %v", b.name, u, err)
	}
	return int(resp.Status)
}

func evalJS[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %.80q: %v", b.name, expr, err)
	}
	return v
}

// waitJS waits for expr to be true on the current page.
func (b *tab) waitJS(what, expr string, within time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: waiting for %s: %v", b.name, what, err)
	}
}

// waitJSAcrossLoads waits for expr to be true while the page may reload.
func (b *tab) waitJSAcrossLoads(what, expr string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+expr+`); } catch (e) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.t.Fatalf("%s: %s did not happen within %v", b.name, what, within)
}

func (b *tab) signIn(token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+"/console/signin"), chromedp.SendKeys("#token", token), chromedp.Click("form.signin button[type=submit]"))
	b.waitJSAcrossLoads("the queue after sign-in", `location.pathname === '/console/' && !!document.getElementById('live')`, 30*time.Second)
}

// checkPage runs axe-core on the page (no serious or critical
// violation) and checks that everything it loaded came from the server.
func (b *tab) checkPage(page string) {
	b.t.Helper()
	evalJS[chromedp.Void](b, axeSource)
	bad := evalJS[[]string](b, `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
		.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')))`)
	for _, v := range bad {
		b.t.Errorf("%s: accessibility: %s", page, v)
	}
	for _, u := range evalJS[[]string](b, `performance.getEntriesByType('resource').map(e => e.name).concat([location.href])`) {
		if !strings.HasPrefix(u, b.base+"/") {
			b.t.Errorf("%s: the page loaded %s, not from the server", page, u)
		}
	}
}

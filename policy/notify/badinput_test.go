package notify

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
	"github.com/earshot/earshot/internal/bustest"
)

// badPayloadRecord is an alert envelope that decodes but whose payload
// does not: score is a string.
func badPayloadRecord(t *testing.T) bus.Message {
	t.Helper()
	e, err := event.New(event.TypeAlert, event.Producer{Name: "t"}, nil, "r1_one", "ses_1", "p1_spk", nil,
		map[string]any{"severity": "high", "category": "abuse.threat", "score": "not a number"}, "bad")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicAlerts, Key: []byte("r1_one"), Value: b}
}

// An alert whose payload does not decode is dead-lettered with its reason
// and acked; the stage neither panics nor stops, and the next alert is
// delivered.
func TestStageUnreadablePayload(t *testing.T) {
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, _ := ParseSecret(testSecret)
	wh, _ := NewWebhook(WebhookConfig{Name: "all", URL: srv.URL, Secret: key})
	bad := badPayloadRecord(t)
	cons := bustest.NewFeed()
	offs := cons.Push(bad, alertRecord(t, "r1_one", 0))
	dl := &bustest.Capture{}
	st, err := NewStage(StageConfig{Consumer: cons, Sender: dl, Keys: keys, Logger: quiet(), Routes: []Route{{Notifier: wh}, {Notifier: NewStdout("stdout", &bytes.Buffer{}), Content: Full}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	cons.WaitAcked(t, offs...)
	waitFor(t, func() bool { return rcv.calls.Load() >= 1 })
	time.Sleep(100 * time.Millisecond)
	stop()
	if n := rcv.calls.Load(); n != 1 {
		t.Errorf("receiver got %d alerts, want 1 (the readable one)", n)
	}
	dls := dl.Topic(event.TopicDeadLetter)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	if reason, _ := dls[0].Header(bus.HeaderDLQReason); len(reason) == 0 || !bytes.Equal(dls[0].Value, bad.Value) {
		t.Fatalf("dead letter: reason %q, value kept %v", reason, bytes.Equal(dls[0].Value, bad.Value))
	}
}

// forged returns rec's alert rewritten by someone without the
// deployment's keys: same event ID, readable (alg none) protected data
// and another severity.
func forged(t *testing.T, rec bus.Message) bus.Message {
	t.Helper()
	e, err := event.Decode(rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetProtected(e.KeyRef().ID, event.AlertData{Text: "nothing to see"}); err != nil {
		t.Fatal(err)
	}
	e.Payload = []byte(`{"severity":"low","category":"abuse.threat","rule_id":"x","score":0.1}`)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: rec.Topic, Key: rec.Key, Value: b}
}

// TestStageForgedAlertFirst: a forged record with a real alert's ID,
// arriving first, is dead-lettered; it does not make the real alert look
// delivered, and the real one reaches the sink.
func TestStageForgedAlertFirst(t *testing.T) {
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, _ := ParseSecret(testSecret)
	wh, _ := NewWebhook(WebhookConfig{Name: "all", URL: srv.URL, Secret: key})
	real := alertRecord(t, "r1_one", 0)
	fake := forged(t, real)
	cons := bustest.NewFeed()
	offs := cons.Push(fake, real)
	dl := &bustest.Capture{}
	st, err := NewStage(StageConfig{Consumer: cons, Sender: dl, Keys: keys, Logger: quiet(), Routes: []Route{{Notifier: wh}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	cons.WaitAcked(t, offs...)
	stop()
	if n := rcv.calls.Load(); n != 1 {
		t.Fatalf("receiver got %d alerts, want the real one", n)
	}
	if dls := dl.Topic(event.TopicDeadLetter); len(dls) != 1 || !bytes.Equal(dls[0].Value, fake.Value) {
		t.Fatalf("%d dead letters, want the forged record", len(dls))
	}
}

// TestStageBadInput: notify dead-letters and acks every record of the
// bad-input corpus, skips an erased speaker's alert without a dead letter
// (its minimal view is still delivered: moderators learn an alert was
// raised), and delivers the good alert after them.
func TestStageBadInput(t *testing.T) {
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, _ := ParseSecret(testSecret)
	wh, _ := NewWebhook(WebhookConfig{Name: "all", URL: srv.URL, Secret: key})
	good := alertRecord(t, "r1_one", 0)
	cases := badinput.Corpus(t, good, keys, func(r event.KeyRef) { keys.Shred(r.ID) })
	feed := bustest.NewFeed()
	var offs []int64
	for _, c := range cases {
		offs = append(offs, feed.Push(c.Msg)...)
	}
	goodOff := feed.Push(good)
	dl := &bustest.Capture{}
	st, err := NewStage(StageConfig{Consumer: feed, Sender: dl, Keys: keys, Logger: quiet(), Routes: []Route{{Notifier: wh}, {Notifier: NewStdout("stdout", &bytes.Buffer{}), Content: Full}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	feed.WaitAcked(t, append(offs, goodOff...)...)
	stop()
	badinput.Check(t, cases, dl.Topic(event.TopicDeadLetter), func(i int) bool { return feed.Acked(offs[i]) })
	_, ids, _ := rcv.got()
	var goodID string
	if e, err := event.Decode(good.Value); err == nil {
		goodID = e.EventID
	}
	if !slices.Contains(ids, goodID) {
		t.Fatalf("the good alert was not delivered after the corpus (delivered: %v)", ids)
	}
}

// TestStageKeyStoreOutage: an alert whose seal cannot be checked because
// the key store is unreachable is not dead-lettered as forged: the check
// is tried again, and the alert is delivered once the store answers.
func TestStageKeyStoreOutage(t *testing.T) {
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, _ := ParseSecret(testSecret)
	wh, _ := NewWebhook(WebhookConfig{Name: "all", URL: srv.URL, Secret: key})
	rec := alertRecord(t, "r1_one", 0)
	cons := bustest.NewFeed()
	offs := cons.Push(rec)
	dl := &bustest.Capture{}
	st, err := NewStage(StageConfig{Consumer: cons, Sender: dl, Keys: &badinput.UnreachableKeys{Keys: keys, Fails: 2}, Logger: quiet(), Routes: []Route{{Notifier: wh}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	cons.WaitAcked(t, offs...)
	stop()
	if n := rcv.calls.Load(); n != 1 {
		t.Fatalf("receiver got %d alerts, want 1", n)
	}
	if dls := dl.Topic(event.TopicDeadLetter); len(dls) != 0 {
		t.Fatalf("%d dead letters, want none", len(dls))
	}
}

package notify

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// runFor runs a notify stage in group "notify" until cond holds, then
// stops it (the consumer commits what was acknowledged).
func runFor(t *testing.T, ctx context.Context, brokers bus.Cluster, cfg StageConfig, cond func() bool) {
	t.Helper()
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "notify", Topics: []string{event.TopicAlerts}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Consumer, cfg.Logger = cons, quiet()
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(sctx) }()
	waitFor(t, cond)
	time.Sleep(500 * time.Millisecond) // past a commit interval
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
}

func TestStageRetriesThenDeadLetter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := alertRecord(t, "r1_one", 0)
	brokers := bustest.Preload(t, ctx, event.TopicAlerts, rec)
	good, failing := newReceiver(t), newReceiver(t)
	failing.fail.Store(http.StatusServiceUnavailable)
	srvGood, srvFail := httptest.NewServer(good), httptest.NewServer(failing)
	defer srvGood.Close()
	defer srvFail.Close()
	key, _ := ParseSecret(testSecret)
	whGood, _ := NewWebhook(WebhookConfig{Name: "good", URL: srvGood.URL, Secret: key})
	whFail, _ := NewWebhook(WebhookConfig{Name: "down", URL: srvFail.URL, Secret: key})
	dl := &bustest.Capture{}
	retry := Retry{Attempts: 4, Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg := StageConfig{Sender: dl, Routes: []Route{{Notifier: whGood, Retry: retry}, {Notifier: whFail, Retry: retry}}}
	runFor(t, ctx, brokers, cfg, func() bool { return len(dl.All()) > 0 })

	if n := failing.calls.Load(); n != 4 {
		t.Errorf("failing receiver got %d attempts, want 4", n)
	}
	_, ids, bad := failing.got()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("webhook-id changed across retries: %v", ids)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("signature problems: %v", bad)
	}
	if n := good.calls.Load(); n != 1 {
		t.Errorf("working receiver got %d deliveries, want 1", n)
	}
	dls := dl.Topic(event.TopicDeadLetter)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	d := dls[0]
	sink, _ := d.Header(HeaderSink)
	reason, _ := d.Header(bus.HeaderDLQReason)
	if string(sink) != "down" || !bytes.Contains(reason, []byte("HTTP 503")) || !bytes.Equal(d.Value, rec.Value) {
		t.Fatalf("dead letter: sink %q, reason %q, value kept %v", sink, reason, bytes.Equal(d.Value, rec.Value))
	}
	if e, err := event.Decode(d.Value); err != nil || e.Type != event.TypeAlert {
		t.Fatalf("the dead letter does not hold the alert: %v", err)
	}

	// The record was acknowledged: a new member of the group gets nothing.
	again := newReceiver(t)
	srvAgain := httptest.NewServer(again)
	defer srvAgain.Close()
	whAgain, _ := NewWebhook(WebhookConfig{Name: "good", URL: srvAgain.URL, Secret: key})
	dl2 := &bustest.Capture{}
	start := time.Now()
	runFor(t, ctx, brokers, StageConfig{Sender: dl2, Routes: []Route{{Notifier: whAgain}}}, func() bool { return time.Since(start) > 3*time.Second })
	if again.calls.Load() != 0 {
		t.Fatal("an acknowledged alert was delivered again")
	}
}

func TestStagePermanentRefusal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := bustest.Preload(t, ctx, event.TopicAlerts, alertRecord(t, "r1_one", 0))
	rcv, wh := failingWebhook(t, "gone", http.StatusGone)
	dl := &bustest.Capture{}
	runFor(t, ctx, brokers, StageConfig{Sender: dl, Routes: []Route{{Notifier: wh, Retry: Retry{Attempts: 5, Initial: 10 * time.Millisecond}}}}, func() bool { return len(dl.All()) > 0 })
	if n := rcv.calls.Load(); n != 1 {
		t.Fatalf("a 410 was retried: %d attempts", n)
	}
}

func TestStageShutdownKeepsAlert(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := bustest.Preload(t, ctx, event.TopicAlerts, alertRecord(t, "r1_one", 0))
	rcv, wh := failingWebhook(t, "flaky", http.StatusInternalServerError)
	dl := &bustest.Capture{}
	// Long pauses: the stage stops while the alert is still in retry.
	runFor(t, ctx, brokers, StageConfig{Sender: dl, Routes: []Route{{Notifier: wh, Retry: Retry{Attempts: 10, Initial: time.Minute}}}},
		func() bool { return rcv.calls.Load() >= 1 })
	if len(dl.All()) != 0 {
		t.Fatal("dead-lettered on shutdown")
	}
	// Not acknowledged, so the next start delivers it.
	rcv.fail.Store(0)
	runFor(t, ctx, brokers, StageConfig{Sender: dl, Routes: []Route{{Notifier: wh}}}, func() bool { return rcv.calls.Load() >= 2 })
	if len(dl.All()) != 0 {
		t.Fatal("dead letters after the successful redelivery")
	}
}

// failingWebhook is a signed webhook to a receiver that answers status.
func failingWebhook(t *testing.T, name string, status int) (*receiver, *Webhook) {
	rcv := newReceiver(t)
	rcv.fail.Store(int32(status))
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	key, _ := ParseSecret(testSecret)
	wh, err := NewWebhook(WebhookConfig{Name: name, URL: srv.URL, Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, wh
}

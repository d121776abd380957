package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
	"github.com/earshot/earshot/storage/crypt"
)

// testAlert returns a sealed alert.raised event.
func testAlert(t *testing.T, keys event.Keys) *event.Envelope {
	t.Helper()
	tl := event.Timeline{Track: "trk_a", FirstSample: 48000, LastSample: 96000, Origin: time.Unix(1_700_000_000, 0).UTC(), Anchor: event.AnchorArrival}
	e, err := event.New(event.TypeAlert, event.Producer{Name: "test"}, nil, "room_a", "ses_a", "spk_a", &tl,
		event.Alert{Severity: "high", Category: "abuse.threat", RuleID: "r"}, "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Seal(context.Background(), keys, event.AlertData{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAlertCommandViaAPI(t *testing.T) {
	keys := crypt.NewMemory()
	alert := testAlert(t, keys)
	idx := serve.NewIndex(100)
	idx.Apply(alert)
	links, err := serve.NewLinkSigner([]byte("0123456789abcdef0123"), "http://x.test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sent := &bustest.Capture{}
	srv, err := serve.New(serve.Config{Store: evidencetest.NewStore(), Keys: keys, Sender: sent, Audit: &serve.KafkaAuditor{Sender: sent},
		Links: links, Operators: []serve.Operator{{Name: "alice", TokenHash: serve.HashToken("alice-token-0123456789")}}, Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("alice-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badFile, []byte("mallory-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"confirm", []string{"alert", "confirm", alert.EventID, "--note", "clear threat", "--server", hs.URL, "--token-file", tokFile, "-data-dir", dir},
			0, "confirm " + alert.EventID + " by alice", ""},
		{"wrong token", []string{"alert", "ack", alert.EventID, "--server", hs.URL, "--token-file", badFile, "-data-dir", dir},
			1, "", "401"},
		{"unknown alert", []string{"alert", "ack", event.DeriveID(event.PrefixEvent, "never raised"), "--server", hs.URL, "--token-file", tokFile, "-data-dir", dir},
			1, "", "404"},
		{"not an alert ID", []string{"alert", "ack", "evt_nope", "--server", hs.URL, "--token-file", tokFile, "-data-dir", dir},
			1, "", "400"},
		{"unknown action", []string{"alert", "escalate", alert.EventID}, 2, "", "unknown action"},
		{"no alert", []string{"alert", "ack"}, 2, "", "usage"},
		{"no token file", []string{"alert", "ack", alert.EventID, "--server", hs.URL, "-data-dir", dir}, 2, "", "--token-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
		})
	}
	if e, _ := idx.Get(alert.EventID); e.Status() != serve.StatusConfirmed {
		t.Errorf("status %s, want confirmed", e.Status())
	}
	if n := len(sent.Topic(event.TopicAlertActions)); n != 1 {
		t.Errorf("%d action records, want 1", n)
	}
}

func TestAlertCommandDirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 2, AutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	var specs []bus.TopicSpec
	for _, ts := range event.Topics(2) {
		specs = append(specs, bus.TopicSpec{Name: ts.Name, Partitions: ts.Partitions})
	}
	if err := bus.EnsureTopics(ctx, emb.Cluster(), specs...); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: emb.Cluster()})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	alert := testAlert(t, crypt.NewMemory())
	b, _ := alert.Marshal()
	if err := prod.Produce(ctx, bus.Message{Topic: event.TopicAlerts, Key: []byte(alert.Room), Value: b}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	common := []string{"-data-dir", dir, "-set", "kafka.embedded=false", "-set", "kafka.brokers=" + emb.Addr(), "-set", "metrics.listen="}
	code, out, errOut := run(t, append([]string{"alert", "dismiss", alert.EventID, "--note", "a quote", "--operator", "bob"}, common...)...)
	if code != 0 || !strings.Contains(out, "dismiss "+alert.EventID+" by bob") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = run(t, append([]string{"alert", "ack", "evt_missing", "--operator", "bob"}, common...)...)
	if code != 1 || !strings.Contains(errOut, "no such alert") {
		t.Errorf("missing alert: exit %d, stderr %q", code, errOut)
	}

	found := false
	for range 50 {
		recs, err := readAll(ctx, emb.Cluster(), event.TopicAlertActions)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			e, err := event.Decode(r)
			if err != nil {
				t.Fatal(err)
			}
			var a event.AlertAction
			if err := e.DecodePayload(&a); err != nil {
				t.Fatal(err)
			}
			if a.Alert == alert.EventID && a.Action == event.ActionDismiss && a.Operator == "bob" && e.Room == alert.Room {
				found = true
			}
		}
		if found {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !found {
		t.Error("no dismiss action on the actions topic")
	}
}

// readAll returns the values of every record of topic.
func readAll(ctx context.Context, brokers bus.Cluster, topic string) ([][]byte, error) {
	var (
		mu  sync.Mutex
		out [][]byte
	)
	t := &serve.Tail{Cluster: brokers, Topics: []string{topic}, Apply: func(e *event.Envelope) {
		b, _ := e.Marshal()
		mu.Lock()
		out = append(out, b)
		mu.Unlock()
	}}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- t.Run(tctx) }()
	for !t.CaughtUp() {
		select {
		case err := <-done:
			cancel()
			mu.Lock()
			defer mu.Unlock()
			return out, err
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return out, nil
}

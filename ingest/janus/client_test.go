package janus

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestClient(t *testing.T, f *fakeJanus, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: f.url(), Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// open creates a session on the fake (closed when the test ends) and
// attaches a VideoRoom handle.
func open(t *testing.T, f *fakeJanus, mod func(*Config)) (context.Context, *Session, *Handle) {
	t.Helper()
	ctx := testCtx(t)
	s, err := newTestClient(t, f, mod).CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	h, err := s.Attach(ctx, PluginVideoRoom)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, s, h
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "10.77.0.2:8088/janus", "ftp://x/janus", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
}

func TestInfo(t *testing.T) {
	f := newFakeJanus(t)
	info, err := newTestClient(t, f, nil).Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.VersionString != "1.1.2" || info.SessionTimeout != 60 || info.Plugins[PluginVideoRoom].Name == "" {
		t.Errorf("info %+v", info)
	}
}

func TestAsyncReplyCorrelatedByTransaction(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, h := open(t, f, nil)
	// An unrelated event for the same handle first: it must go to Events,
	// not satisfy the request.
	f.push(s.ID(), map[string]any{"janus": "event", "session_id": s.ID(), "sender": h.ID(), "transaction": "someone-else",
		"plugindata": map[string]any{"plugin": PluginVideoRoom, "data": map[string]any{"videoroom": "event", "room": 1}}})
	ev, err := h.Message(ctx, map[string]any{"request": "join", "n": 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Echo struct {
			N int `json:"n"`
		} `json:"echo"`
	}
	if err := json.Unmarshal(ev.PluginData.Data, &data); err != nil || data.Echo.N != 7 {
		t.Fatalf("reply %s does not answer our request", ev.PluginData.Data)
	}
	select {
	case other := <-h.Events():
		if other.Transaction != "someone-else" {
			t.Errorf("Events got %+v", other)
		}
	case <-ctx.Done():
		t.Fatal("unrelated event not delivered to Events")
	}
}

// A reply that arrives on the long poll before the HTTP ack returns must
// not be lost: the transaction is registered before the request is sent.
func TestReplyOvertakingAck(t *testing.T) {
	f := newFakeJanus(t)
	f.onMessage = func(f *fakeJanus, sid, hid uint64, tx string, body map[string]any) any {
		f.push(sid, map[string]any{"janus": "event", "session_id": sid, "sender": hid, "transaction": tx,
			"plugindata": map[string]any{"plugin": PluginVideoRoom, "data": map[string]any{"videoroom": "joined", "room": 1234, "id": 5}}})
		time.Sleep(200 * time.Millisecond) // let the poll deliver it first
		return map[string]any{"janus": "ack", "session_id": sid, "transaction": tx}
	}
	ctx, _, h := open(t, f, nil)
	vr := &VideoRoom{Handle: h}
	joined, err := vr.Join(ctx, PublisherJoin{Room: NumID(1234), Display: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if joined.ID != NumID(5) {
		t.Errorf("joined %+v", joined)
	}
	body := f.lastRequest("message")["body"].(map[string]any)
	if body["request"] != "join" || body["ptype"] != "publisher" || body["room"] != float64(1234) || body["display"] != "x" {
		t.Errorf("join body %v", body)
	}
	if _, ok := body["id"]; ok {
		t.Errorf("zero ID sent: %v", body)
	}
}

func TestSyncReplyAndPluginError(t *testing.T) {
	f := newFakeJanus(t)
	f.onMessage = func(f *fakeJanus, sid, hid uint64, tx string, body map[string]any) any {
		data := map[string]any{"videoroom": "success", "list": []any{map[string]any{"room": 1234, "description": "Demo", "audiocodec": "opus"}}}
		if body["request"] == "listparticipants" {
			data = map[string]any{"videoroom": "event", "error_code": VideoRoomErrNoSuchRoom, "error": "No such room (9)"}
		}
		return map[string]any{"janus": "success", "session_id": sid, "sender": hid, "transaction": tx,
			"plugindata": map[string]any{"plugin": PluginVideoRoom, "data": data}}
	}
	ctx, _, h := open(t, f, nil)
	vr := &VideoRoom{Handle: h}
	rooms, err := vr.List(ctx, "")
	if err != nil || len(rooms) != 1 || rooms[0].Room != NumID(1234) || rooms[0].AudioCodec != "opus" {
		t.Fatalf("List = %+v, %v", rooms, err)
	}
	_, err = vr.ListParticipants(ctx, NumID(9))
	var pe *PluginError
	if !errors.As(err, &pe) || pe.Code != VideoRoomErrNoSuchRoom || pe.Plugin != PluginVideoRoom {
		t.Fatalf("ListParticipants error %v, want a PluginError %d", err, VideoRoomErrNoSuchRoom)
	}
}

func TestCoreErrorIsTyped(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, h := open(t, f, nil)
	f.kill(s.ID())
	err := h.Hangup(ctx)
	var je *Error
	if !errors.As(err, &je) || je.Code != CodeSessionNotFound || !errors.Is(err, ErrSessionGone) {
		t.Fatalf("hangup on a dead session: %v", err)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("session did not notice it is gone")
	}
	if !errors.Is(s.Err(), ErrSessionGone) {
		t.Errorf("Err() = %v, want ErrSessionGone", s.Err())
	}
	if _, ok := <-h.Events(); ok {
		t.Error("handle events still open after the session ended")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the server dropped the session: %v", err)
	}
	if _, err := h.Message(ctx, map[string]any{"request": "list"}, nil); !errors.Is(err, ErrSessionGone) {
		t.Errorf("message on an ended session: %v", err)
	}
}

func TestTimeoutEventEndsSession(t *testing.T) {
	f := newFakeJanus(t)
	c := newTestClient(t, f, nil)
	ctx := testCtx(t)
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.push(s.ID(), map[string]any{"janus": "timeout", "session_id": s.ID()})
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("timeout event did not end the session")
	}
	if !errors.Is(s.Err(), ErrSessionGone) {
		t.Errorf("Err() = %v", s.Err())
	}
}

func TestEventsRoutingAndOverflow(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, h := open(t, f, func(c *Config) { c.EventBuffer = 2 })
	for i := range 4 {
		f.push(s.ID(), map[string]any{"janus": "media", "session_id": s.ID(), "sender": h.ID(), "mid": "0", "type": "audio", "receiving": i%2 == 0})
	}
	f.push(s.ID(), map[string]any{"janus": "webrtcup", "session_id": s.ID(), "sender": 999})
	// The second handle's marker event is queued after the others, so once
	// it arrives everything before it has been dispatched.
	h2, err := s.Attach(ctx, PluginVideoRoom)
	if err != nil {
		t.Fatal(err)
	}
	f.push(s.ID(), map[string]any{"janus": "webrtcup", "session_id": s.ID(), "sender": h2.ID()})
	select {
	case <-h2.Events():
	case <-ctx.Done():
		t.Fatal("marker event not delivered")
	}
	if h.Dropped() != 2 || s.Orphans() != 1 {
		t.Errorf("dropped %d (want 2), orphans %d (want 1)", h.Dropped(), s.Orphans())
	}
	for i := range 2 {
		ev := <-h.Events()
		if ev.Kind != KindMedia || ev.Receiving == nil || *ev.Receiving != (i%2 == 0) || ev.Mid != "0" {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
}

func TestMalformedEventsAreSkipped(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, h := open(t, f, nil)
	f.mu.Lock()
	f.pollBody = []byte(`[{"janus":"webrtcup","sender":` + jsonNum(h.ID()) + `}, {"janus": 7}, {"sender":1}, "x"]`)
	f.mu.Unlock()
	select {
	case ev := <-h.Events():
		if ev.Kind != KindWebRTCUp {
			t.Errorf("got %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("good event lost among bad ones")
	}
	if s.Malformed() != 3 || s.Err() != nil {
		t.Errorf("malformed %d, err %v", s.Malformed(), s.Err())
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestKeepalives(t *testing.T) {
	f := newFakeJanus(t)
	c := newTestClient(t, f, func(c *Config) { c.KeepAlive = 20 * time.Millisecond })
	ctx := testCtx(t)
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for {
		f.mu.Lock()
		n := f.keepalives
		f.mu.Unlock()
		if n >= 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("only %d keepalives", n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, h := open(t, f, nil)
	if err := h.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Detach(ctx); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if _, ok := <-h.Events(); ok {
		t.Error("events open after detach")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if f.destroys != 1 {
		t.Errorf("destroy sent %d times", f.destroys)
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", s.Err())
	}
	if _, err := s.Attach(ctx, PluginVideoRoom); !errors.Is(err, ErrClosed) {
		t.Errorf("attach after close: %v", err)
	}
}

func TestMessageHonoursContext(t *testing.T) {
	f := newFakeJanus(t)
	f.onMessage = func(f *fakeJanus, sid, hid uint64, tx string, body map[string]any) any {
		return map[string]any{"janus": "ack", "session_id": sid, "transaction": tx} // never answered
	}
	ctx, _, h := open(t, f, nil)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := h.Message(short, map[string]any{"request": "join"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestTrickle(t *testing.T) {
	f := newFakeJanus(t)
	ctx, _, h := open(t, f, nil)
	if err := h.TrickleComplete(ctx); err != nil {
		t.Fatal(err)
	}
	cand, _ := f.lastRequest("trickle")["candidate"].(map[string]any)
	if cand["completed"] != true {
		t.Errorf("trickle completed sent %v", f.lastRequest("trickle"))
	}
}

// A restarted Janus answers the long poll of a session it no longer knows
// with a bare 404: the session must end at once as gone, not after the
// server's session timeout of failed polls.
func TestLongPollNotFoundEndsSession(t *testing.T) {
	f := newFakeJanus(t)
	ctx, s, _ := open(t, f, func(c *Config) { c.SessionTimeout = time.Hour })
	f.kill(s.ID())
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("session did not end after its long poll got 404")
	}
	if !errors.Is(s.Err(), ErrSessionGone) {
		t.Errorf("Err() = %v, want ErrSessionGone", s.Err())
	}
}

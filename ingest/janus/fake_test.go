package janus

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeJanus is an in-process stand-in for the Janus HTTP API, enough to
// exercise the client's transaction and event routing.
type fakeJanus struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	nextID     uint64
	sessions   map[uint64]bool
	queue      map[uint64][]json.RawMessage // events waiting for a long poll
	wake       chan struct{}
	requests   []map[string]any // every POST body, in order
	keepalives int
	destroys   int
	// pollBody, when set, is returned (once) by the next long poll as is.
	pollBody []byte
	// onMessage decides how a plugin message is answered; nil answers an
	// ack and queues an "event" with the same transaction.
	onMessage func(f *fakeJanus, sid, hid uint64, tx string, body map[string]any) (reply any)
}

func newFakeJanus(t *testing.T) *fakeJanus {
	f := &fakeJanus{t: t, nextID: 1000, sessions: map[uint64]bool{}, queue: map[uint64][]json.RawMessage{}, wake: make(chan struct{}, 1)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJanus) url() string { return f.srv.URL + "/janus" }

// push queues an event for the session's long poll.
func (f *fakeJanus) push(sid uint64, ev any) {
	b, err := json.Marshal(ev)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.queue[sid] = append(f.queue[sid], b)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeJanus) lastRequest(kind string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i]["janus"] == kind {
			return f.requests[i]
		}
	}
	return nil
}

func (f *fakeJanus) write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeJanus) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/janus"), "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	if r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "info" {
		f.write(w, map[string]any{"janus": "server_info", "version_string": "1.1.2", "session-timeout": 60,
			"plugins": map[string]any{PluginVideoRoom: map[string]any{"name": "JANUS VideoRoom plugin"}}})
		return
	}
	var ids []uint64
	for _, p := range parts {
		id, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			http.Error(w, "bad path", http.StatusNotFound)
			return
		}
		ids = append(ids, id)
	}
	if r.Method == http.MethodGet && len(ids) == 1 {
		f.poll(w, r, ids[0])
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		f.write(w, map[string]any{"janus": "error", "error": map[string]any{"code": CodeInvalidJSON, "reason": err.Error()}})
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	tx, _ := req["transaction"].(string)
	kind, _ := req["janus"].(string)
	if len(ids) >= 1 && !f.alive(ids[0]) {
		f.write(w, map[string]any{"janus": "error", "transaction": tx, "error": map[string]any{"code": CodeSessionNotFound, "reason": "No such session"}})
		return
	}
	switch {
	case len(ids) == 0 && kind == "create":
		f.mu.Lock()
		f.nextID++
		id := f.nextID
		f.sessions[id] = true
		f.mu.Unlock()
		f.write(w, map[string]any{"janus": "success", "transaction": tx, "data": map[string]any{"id": id}})
	case len(ids) == 1 && kind == "attach":
		f.mu.Lock()
		f.nextID++
		id := f.nextID
		f.mu.Unlock()
		f.write(w, map[string]any{"janus": "success", "session_id": ids[0], "transaction": tx, "data": map[string]any{"id": id}})
	case len(ids) == 1 && kind == "keepalive":
		f.mu.Lock()
		f.keepalives++
		f.mu.Unlock()
		f.write(w, map[string]any{"janus": "ack", "session_id": ids[0], "transaction": tx})
	case len(ids) == 1 && kind == "destroy":
		f.mu.Lock()
		f.destroys++
		delete(f.sessions, ids[0])
		f.mu.Unlock()
		f.write(w, map[string]any{"janus": "success", "session_id": ids[0], "transaction": tx})
	case len(ids) == 2 && kind == "message":
		b, _ := req["body"].(map[string]any)
		if f.onMessage != nil {
			f.write(w, f.onMessage(f, ids[0], ids[1], tx, b))
			return
		}
		f.push(ids[0], map[string]any{"janus": "event", "session_id": ids[0], "sender": ids[1], "transaction": tx,
			"plugindata": map[string]any{"plugin": PluginVideoRoom, "data": map[string]any{"videoroom": "event", "room": 1234, "echo": b}}})
		f.write(w, map[string]any{"janus": "ack", "session_id": ids[0], "transaction": tx})
	case len(ids) == 2 && (kind == "trickle"):
		f.write(w, map[string]any{"janus": "ack", "session_id": ids[0], "transaction": tx})
	case len(ids) == 2 && (kind == "detach" || kind == "hangup"):
		f.write(w, map[string]any{"janus": "success", "session_id": ids[0], "transaction": tx})
	default:
		f.write(w, map[string]any{"janus": "error", "transaction": tx, "error": map[string]any{"code": CodeUnknownRequest, "reason": fmt.Sprintf("unknown %q", kind)}})
	}
}

func (f *fakeJanus) alive(sid uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[sid]
}

// kill forgets a session, as a restarted Janus would.
func (f *fakeJanus) kill(sid uint64) {
	f.mu.Lock()
	delete(f.sessions, sid)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeJanus) poll(w http.ResponseWriter, r *http.Request, sid uint64) {
	maxev, _ := strconv.Atoi(r.URL.Query().Get("maxev"))
	if maxev < 1 {
		maxev = 1
	}
	deadline := time.After(time.Second) // Janus waits 30 s; be quicker
	for {
		f.mu.Lock()
		if raw := f.pollBody; raw != nil {
			f.pollBody = nil
			f.mu.Unlock()
			_, _ = w.Write(raw)
			return
		}
		if !f.sessions[sid] {
			f.mu.Unlock()
			// Janus 1.1.2 answers a long poll on a session it does not
			// know with a bare 404 (no error 458 body).
			w.WriteHeader(http.StatusNotFound)
			return
		}
		q := f.queue[sid]
		if len(q) > 0 {
			n := min(len(q), maxev)
			out := q[:n]
			f.queue[sid] = q[n:]
			f.mu.Unlock()
			if maxev == 1 {
				_, _ = w.Write(out[0])
				return
			}
			f.write(w, out)
			return
		}
		f.mu.Unlock()
		select {
		case <-f.wake:
		case <-deadline:
			f.write(w, []any{map[string]any{"janus": "keepalive"}})
			return
		case <-r.Context().Done():
			return
		}
	}
}

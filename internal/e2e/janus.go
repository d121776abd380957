package e2e

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/testbed"
)

// CreateRoom creates an audio-only VideoRoom for the test (not permanent)
// and destroys it when the test ends. A room left by an earlier run that
// crashed is reused.
func CreateRoom(t testing.TB, ep testbed.JanusEndpoint, room uint64) {
	t.Helper()
	CreateRoomWith(t, ep, room, nil)
}

// CreateRoomWith is CreateRoom with more fields of Janus's create request
// (e.g. "record" and "rec_dir" for Janus's own recording).
func CreateRoomWith(t testing.TB, ep testbed.JanusEndpoint, room uint64, extra map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, h := videoroom(ctx, t, ep)
	req := map[string]any{
		"request": "create", "room": room, "publishers": 30, "audiocodec": "opus",
		"description": "earshot e2e", "permanent": false,
	}
	maps.Copy(req, extra)
	_, err := h.Message(ctx, req, nil)
	var pe *janus.PluginError
	if err != nil && !(errors.As(err, &pe) && pe.Code == 427) { // 427: room exists
		_ = s.Close()
		t.Fatalf("janus create room %d: %v", room, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = h.Message(ctx, map[string]any{"request": "destroy", "room": room}, nil)
		_ = s.Close()
	})
}

// DestroyRoom destroys a VideoRoom now (before the test ends): whoever
// records it sees the room end.
func DestroyRoom(t testing.TB, ep testbed.JanusEndpoint, room uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, h := videoroom(ctx, t, ep)
	defer s.Close()
	if _, err := h.Message(ctx, map[string]any{"request": "destroy", "room": room}, nil); err != nil {
		t.Fatalf("janus destroy room %d: %v", room, err)
	}
}

// videoroom opens a Janus session with the VideoRoom plugin attached.
func videoroom(ctx context.Context, t testing.TB, ep testbed.JanusEndpoint) (*janus.Session, *janus.Handle) {
	t.Helper()
	c, err := janus.New(janus.Config{URL: ep.URL, LocalAddr: ep.HostAddr})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatalf("janus session: %v", err)
	}
	h, err := s.Attach(ctx, "janus.plugin.videoroom")
	if err != nil {
		_ = s.Close()
		t.Fatalf("janus attach: %v", err)
	}
	return s, h
}

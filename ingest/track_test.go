package ingest

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record"
)

// fakeRTP delivers queued datagrams, blocks when none is queued and
// reports io.EOF once closed and drained, as a pion track does.
type fakeRTP struct{ ch chan []byte }

func newFakeRTP() *fakeRTP { return &fakeRTP{ch: make(chan []byte, 1024)} }

func (f *fakeRTP) Read(b []byte) (int, interceptor.Attributes, error) {
	d, ok := <-f.ch
	if !ok {
		return 0, nil, io.EOF
	}
	return copy(b, d), nil, nil
}

// noRTCP blocks until the test ends.
type noRTCP struct{ done chan struct{} }

func (n noRTCP) ReadRTCP() ([]rtcp.Packet, interceptor.Attributes, error) {
	<-n.done
	return nil, nil, io.EOF
}

// opusPacket marshals a 20 ms Opus RTP packet (a CELT silence frame).
func opusPacket(t *testing.T, seq uint16) []byte {
	t.Helper()
	p := rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 0x1234},
		Payload: []byte{0xf8, 0xff, 0xfe},
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nullSinks accept chunks and segments and keep nothing.
type nullSinks struct{}

func (nullSinks) Chunk(*record.Chunk) error                          { return nil }
func (nullSinks) OpenSegment(record.SegmentStart) (io.Writer, error) { return io.Discard, nil }
func (nullSinks) Segment(*record.Segment) error                      { return nil }
func (nullSinks) AbortSegment(record.SegmentStart, error)            {}
func newTestRecorder(t *testing.T) *record.Track {
	t.Helper()
	rec, err := record.NewTrack(record.TrackConfig{
		Track: "trk_test", Room: "room_test", Session: "ses_test", Speaker: "spk_test",
		PayloadType: 111, Chunks: nullSinks{}, Segments: nullSinks{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// runLoop runs RunTrackLoop in the background; the result arrives on the
// returned channel.
func runLoop(ctx context.Context, cfg TrackLoopConfig) <-chan string {
	done := make(chan string, 1)
	go func() { done <- RunTrackLoop(ctx, cfg) }()
	return done
}

func wait(t *testing.T, done <-chan string) string {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the track loop did not end within 30 s")
		return ""
	}
}

func TestTrackLoopRecordsUntilTheTrackEnds(t *testing.T) {
	tests := []struct {
		name        string
		record      bool
		malformed   bool // a datagram that is no RTP packet, mid-stream
		wantPackets int64
		wantMalform int64
		wantStarted bool
	}{
		{name: "recorded", record: true, wantPackets: 50, wantStarted: true},
		{name: "malformed datagram counted, track goes on", record: true, malformed: true, wantPackets: 50, wantMalform: 1, wantStarted: true},
		{name: "gate closed", record: false, wantPackets: 0, wantStarted: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeRTP()
			for i := range 50 {
				if tt.malformed && i == 25 {
					src.ch <- []byte{0x80, 0x6f}
				}
				src.ch <- opusPacket(t, uint16(1000+i))
			}
			close(src.ch)
			rtcpDone := make(chan struct{})
			defer close(rtcpDone)
			rec := newTestRecorder(t)
			var mu sync.Mutex
			starts := 0
			var startTL event.Timeline
			reason := wait(t, runLoop(context.Background(), TrackLoopConfig{
				RTP: src, RTCP: noRTCP{rtcpDone}, Recorder: rec, Ticker: &TrackTicker{},
				Record: func() bool { return tt.record },
				OnStart: func(tl event.Timeline, _ time.Time) {
					mu.Lock()
					defer mu.Unlock()
					starts++
					startTL = tl
				},
			}))
			if reason != ReasonPublisherLeft {
				t.Errorf("reason %q, want %q", reason, ReasonPublisherLeft)
			}
			s := rec.Stats()
			if s.Packets != tt.wantPackets || s.Malformed != tt.wantMalform {
				t.Errorf("%d packets, %d malformed; want %d, %d", s.Packets, s.Malformed, tt.wantPackets, tt.wantMalform)
			}
			mu.Lock()
			defer mu.Unlock()
			if (starts == 1) != tt.wantStarted || starts > 1 {
				t.Errorf("OnStart called %d times, want started=%v", starts, tt.wantStarted)
			}
			if tt.wantStarted && startTL.Samples() != 960 {
				t.Errorf("OnStart timeline has %d samples, want the first packet's 960", startTL.Samples())
			}
			// The recorder is closed: the final chunk and segment are out.
			if err := rec.Push(&rtp.Packet{}, time.Now()); !errors.Is(err, record.ErrClosed) {
				t.Errorf("Push after the loop: %v, want ErrClosed", err)
			}
		})
	}
}

// TestTrackLoopShutdown: the loop ends when its context does, even while
// the track's reader is blocked, and the recorder is closed.
func TestTrackLoopShutdown(t *testing.T) {
	src := newFakeRTP()
	src.ch <- opusPacket(t, 1)
	rec := newTestRecorder(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := runLoop(ctx, TrackLoopConfig{
		RTP: src, Recorder: rec, Ticker: &TrackTicker{},
		OnStart: func(event.Timeline, time.Time) { close(started) },
	})
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the first packet was not recorded within 30 s")
	}
	cancel()
	if r := wait(t, done); r != ReasonShutdown {
		t.Errorf("reason %q, want %q", r, ReasonShutdown)
	}
	if err := rec.Tick(time.Now()); !errors.Is(err, record.ErrClosed) {
		t.Errorf("Tick after the loop: %v, want ErrClosed", err)
	}
	close(src.ch) // releases the reading goroutine
}

// TestTrackTickerFillsMute: with no packet after the first, the shared
// ticker advances the timeline with silence (mute) while the track waits.
func TestTrackTickerFillsMute(t *testing.T) {
	src := newFakeRTP()
	src.ch <- opusPacket(t, 1)
	rec := newTestRecorder(t)
	ticker := &TrackTicker{}
	ctx, cancel := context.WithCancel(context.Background())
	done := runLoop(ctx, TrackLoopConfig{RTP: src, Recorder: rec, Ticker: ticker})
	// Mute is filled once no packet came for 500 ms; wait well past it.
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wait(t, done)
	close(src.ch)
	if s := rec.Stats(); s.Gaps.Mute == 0 {
		t.Errorf("no mute filled after 1.5 s without packets: %+v", s)
	}
	ticker.mu.Lock()
	defer ticker.mu.Unlock()
	if len(ticker.loops) != 0 {
		t.Errorf("%d loops still on the ticker after the loop ended", len(ticker.loops))
	}
}

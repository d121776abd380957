package rebroadcast

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/storage/crypt"
)

// noLog is a fingerprints topic with no partitions: a single instance.
type noLog struct{}

func (noLog) Offsets(context.Context, string) (map[int]bus.PartitionRange, error) {
	return map[int]bus.PartitionRange{}, nil
}
func (noLog) OffsetAt(context.Context, string, int, time.Time) (int64, error) { return 0, nil }
func (noLog) Follow(ctx context.Context, _ string, _ int, _ int64, _ func(bus.Message) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestOneInstanceFindsReplay: one instance on a stand-in consumer holds
// both rooms; the replay raises one alert. Its metrics count what it did.
func TestOneInstanceFindsReplay(t *testing.T) {
	s := speechtest.New(t)
	keys := crypt.NewMemory()
	feed, out := bustest.NewFeed(), &bustest.Capture{}
	reg := prometheus.NewRegistry()
	st, err := New(Config{Consumer: feed, Log: noLog{}, Sender: out, Keys: keys, Secret: make([]byte, 32), QueryDelay: time.Millisecond, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	defer stop()
	origin := time.Now().Add(-time.Minute)
	ra := room{name: "room_a", session: "ses_a", speaker: "spk_a", track: "trk_a", origin: origin}
	rb := room{name: "room_b", session: "ses_b", speaker: "spk_b", track: "trk_b", origin: origin.Add(30 * time.Second)}
	text := s.Text(101, 55)
	x := say(s, "x", text)
	xc := say(s, "xc", text, "gain", "-12")
	offs := feed.Push(chunks(t, keys, ra, x, 32)...)
	feed.WaitAcked(t, offs...)
	nChunks := len(offs)
	bChunks := chunks(t, keys, rb, append(say(s, "b", s.Text(5, 12)), xc...), 12)
	offs = feed.Push(bChunks...)
	feed.WaitAcked(t, offs...)
	feed.WaitAcked(t, feed.Push(bus.Message{Key: []byte("trk_x"), Value: []byte("not an event")})...)
	al := out.Topic(event.TopicAlerts)
	t.Logf("%d alerts, %d records", len(al), len(out.Topic(TopicFingerprints)))
	// Each track's records carry what its index holds, once.
	published := 0
	for _, tr := range []string{"trk_a", "trk_b"} {
		sum := 0
		for _, m := range out.Topic(TopicFingerprints) {
			r, err := DecodeRecord(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if r.Track == tr {
				sum += len(r.Landmarks) / 8
			}
		}
		published += sum
		st.mu.Lock()
		n := st.idx.Count(tr + "@0")
		st.mu.Unlock()
		if n == 0 || n != sum {
			t.Errorf("%s: index holds %d landmarks, its records %d", tr, n, sum)
		}
	}
	if len(al) != 1 {
		t.Fatalf("%d alerts", len(al))
	}
	tracks, landmarks, bytes := st.IndexStats()
	m := gathered(t, reg)
	for name, want := range map[string]float64{
		"earshot_rebroadcast_chunks_total":                                         float64(nChunks + len(bChunks)),
		"earshot_rebroadcast_landmarks_published_total":                            float64(published),
		"earshot_rebroadcast_landmarks_indexed_local_total":                        float64(published),
		"earshot_rebroadcast_landmarks_indexed_remote_total":                       0,
		"earshot_rebroadcast_index_tracks":                                         float64(tracks),
		"earshot_rebroadcast_index_landmarks":                                      float64(landmarks),
		"earshot_rebroadcast_index_bytes":                                          float64(bytes),
		"earshot_rebroadcast_matches_total":                                        1,
		"earshot_rebroadcast_alerts_total,category=leak.rebroadcast,severity=high": 1,
		"earshot_rebroadcast_dead_letters_total":                                   1,
		"earshot_rebroadcast_decode_errors_total":                                  0,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if tracks != 2 || landmarks != published {
		t.Errorf("index holds %d tracks, %d landmarks; %d published", tracks, landmarks, published)
	}
}

// gathered reads a registry: metric name (with its labels, name=value,
// after commas) to value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

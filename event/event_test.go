package event

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	fastjson "github.com/go-json-experiment/json/v1"
)

var origin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func sampleEvents(t testing.TB) []*Envelope {
	tl := &Timeline{Track: TrackID(SessionID("r1_room", origin.UnixNano()), "p1_spk", 0), FirstSample: 48000, LastSample: 95999, Origin: origin, Anchor: AnchorArrival}
	prod := Producer{Name: "earshot-test", Version: "dev"}
	var out []*Envelope
	for _, c := range []struct {
		typ  Type
		proc *Processing
	}{
		{TypeAudioChunk, nil},
		{TypeTranscript, &Processing{Engine: "whisper-http", Model: "tiny.en"}},
		{TypeTranscript, &Processing{Engine: "whisper-http", Model: "base.en"}},
	} {
		e, err := New(c.typ, prod, c.proc, "r1_room", "ses_x", "p1_spk", tl, AudioChunk{Codec: "opus"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestIDsStableAcrossProcesses computes IDs here and in a second process
// (this test binary again, which then only prints its IDs) and compares.
func TestIDsStableAcrossProcesses(t *testing.T) {
	if os.Getenv("EARSHOT_PRINT_IDS") == "1" {
		for _, e := range sampleEvents(t) {
			fmt.Println("ID", e.EventID)
		}
		return
	}
	var want []string
	for _, e := range sampleEvents(t) {
		want = append(want, e.EventID)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIDsStableAcrossProcesses$", "-test.v")
	cmd.Env = append(os.Environ(), "EARSHOT_PRINT_IDS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutPrefix(line, "ID "); ok {
			got = append(got, id)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("IDs differ across processes:\n got %v\nwant %v", got, want)
	}
}

func TestIDsFollowContent(t *testing.T) {
	ev := sampleEvents(t)
	if ev[0].EventID == ev[1].EventID {
		t.Fatal("chunk and transcript share an ID")
	}
	if ev[1].EventID == ev[2].EventID || ev[1].Revision == ev[2].Revision {
		t.Fatal("a new model must make a new revision and ID")
	}
	again := sampleEvents(t)
	for i := range ev {
		if ev[i].EventID != again[i].EventID {
			t.Fatalf("event %d: same input gave %s then %s", i, ev[i].EventID, again[i].EventID)
		}
	}
	shifted := *ev[0].Timeline
	shifted.FirstSample++
	e, _ := New(TypeAudioChunk, ev[0].Producer, nil, "r1_room", "ses_x", "p1_spk", &shifted, nil)
	if e.EventID == ev[0].EventID {
		t.Fatal("different timeline range gave the same ID")
	}
	// The clock and producer do not enter the ID.
	e2, _ := New(TypeAudioChunk, Producer{Name: "other", Version: "9"}, nil, "r1_room", "ses_x", "p1_spk", ev[0].Timeline, AudioChunk{Seq: 5})
	if e2.EventID != ev[0].EventID {
		t.Fatal("producer or payload changed the ID")
	}
}

func TestDeriveIDIndependentOracle(t *testing.T) {
	// Recompute DeriveID("x", "ab", "c") by hand: uvarint length + bytes.
	sum := sha256.Sum256([]byte("\x02ab\x01c"))
	want := "x_" + idEncoding.EncodeToString(sum[:idBytes])
	if got := DeriveID("x", "ab", "c"); got != want {
		t.Fatalf("DeriveID = %s, want %s", got, want)
	}
	if DeriveID("x", "ab", "c") == DeriveID("x", "a", "bc") {
		t.Fatal("parts are not length-prefixed")
	}
}

func TestRoundTrip(t *testing.T) {
	e := sampleEvents(t)[1]
	now := time.Now()
	e.Hops.Recorded = Stamp(now)
	if err := e.SetProtected("k1", AudioChunkData{Packets: [][]byte{{1, 2, 3}}, Offsets: []int64{0}}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != e.EventID || d.Timeline.LastSample != e.Timeline.LastSample || !d.Hops.Recorded.Equal(now) {
		t.Fatalf("round trip changed the event: %+v", d)
	}
	var data AudioChunkData
	if err := d.OpenProtected(&data); err != nil || string(data.Packets[0]) != "\x01\x02\x03" {
		t.Fatalf("protected data: %v %v", data, err)
	}
	var p AudioChunk
	if err := d.DecodePayload(&p); err != nil || p.Codec != "opus" {
		t.Fatalf("payload: %+v %v", p, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := sampleEvents(t)[0].Marshal()
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not json", []byte("{"), "decode"},
		{"trailing", append(append([]byte{}, good...), []byte(" {}")...), "trailing"},
		{"future schema", mutate(func(m map[string]any) { m["schema_version"] = 2 }), "schema_version"},
		{"bad id", mutate(func(m map[string]any) { m["event_id"] = "x" }), "event_id"},
		{"bad timeline", mutate(func(m map[string]any) { m["timeline"].(map[string]any)["last_sample"] = 1 }), "last_sample"},
		{"unknown alg", mutate(func(m map[string]any) { m["protected"] = map[string]any{"key_id": "k", "alg": "rot13"} }), "alg"},
		{"too big", make([]byte, MaxEventBytes+1), "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestTimelineArithmetic(t *testing.T) {
	tl := Timeline{Track: "trk_x", FirstSample: 48000, LastSample: 48000*3 - 1, Origin: origin, Anchor: AnchorRTCP}
	if tl.Duration() != 2*time.Second || !tl.Start().Equal(origin.Add(time.Second)) || !tl.End().Equal(origin.Add(3*time.Second)) {
		t.Fatalf("duration %v start %v end %v", tl.Duration(), tl.Start(), tl.End())
	}
	for _, d := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond, 90 * time.Minute, 1234567 * time.Microsecond} {
		n := DurationToSamples(d)
		back := SamplesToDuration(n)
		if diff := d - back; diff < 0 || diff >= time.Second/SampleRate {
			t.Errorf("%v -> %d samples -> %v", d, n, back)
		}
	}
	if !tl.Overlaps(tl.Sub(48000*3-1, 48000*4)) || tl.Overlaps(tl.Sub(48000*3, 48000*4)) {
		t.Fatal("Overlaps is off by one")
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range sampleEvents(f) {
		b, _ := e.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"event_id":"evt_aaaaaaaa","type":"a.b","schema_version":1,"revision":"rev_0","producer":{"name":"x"},"timeline":{"track":"t","first_sample":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must validate and re-encode to something that decodes.
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
	})
}

// FuzzDecodeLikeStdlib: the one-pass reader decodes exactly what
// encoding/json would, and refuses what it refuses, so switching readers
// changed no event's meaning.
func FuzzDecodeLikeStdlib(f *testing.F) {
	for _, e := range sampleEvents(f) {
		b, _ := e.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"event_id":"evt_aaaaaaaa","EVENT_ID":"evt_bbbbbbbb","type":"a.b","type":"c.d","schema_version":1.0,"revision":"rev_\xff","producer":{"name":"x"},"payload":{"a":[1,2]}} `))
	f.Add([]byte(`{"event_id":"evt_aaaaaaaa","type":"a.b"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var std, fast Envelope
		errStd := json.Unmarshal(b, &std)
		errFast := fastjson.Unmarshal(b, &fast)
		if (errStd == nil) != (errFast == nil) {
			t.Fatalf("encoding/json says %v, the one-pass reader %v, for %q", errStd, errFast, b)
		}
		if errStd == nil && !reflect.DeepEqual(std, fast) {
			t.Fatalf("decoded differently from %q:\nencoding/json %+v\none-pass      %+v", b, std, fast)
		}
	})
}

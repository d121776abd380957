package janus

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every captured event (testdata/events, written by the integration tests
// with EARSHOT_JANUS_CAPTURE) parses, and so does its plugin data.
func TestParseCapturedEvents(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured events: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ev, err := ParseEvent(readEvent(t, filepath.Base(f)))
			if err != nil {
				t.Fatal(err)
			}
			if ev.PluginData == nil {
				return
			}
			switch ev.PluginData.Plugin {
			case PluginVideoRoom:
				if _, err := ev.VideoRoom(); err != nil {
					t.Fatal(err)
				}
			case PluginAudioBridge:
				if _, err := ev.AudioBridge(); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("unexpected plugin %q", ev.PluginData.Plugin)
			}
		})
	}
}

func videoRoomEvent(t *testing.T, name string) (*Event, *VideoRoomEvent) {
	t.Helper()
	ev, err := ParseEvent(readEvent(t, name))
	if err != nil {
		t.Fatal(err)
	}
	vr, err := ev.VideoRoom()
	if err != nil {
		t.Fatal(err)
	}
	return ev, vr
}

func TestVideoRoomEventFields(t *testing.T) {
	t.Run("joined", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_joined.json")
		if ev.Transaction == "" || vr.Kind != "joined" || vr.Room != NumID(1234) || vr.ID.IsZero() || vr.PrivateID == 0 || vr.Description != "Demo Room" {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("publishers", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_publishers.json")
		if ev.Transaction != "" || len(vr.Publishers) != 1 {
			t.Fatalf("%+v", vr)
		}
		p := vr.Publishers[0]
		if p.ID.IsZero() || p.Display == "" || len(p.Streams) != 1 || p.Streams[0].Type != "audio" || p.Streams[0].Codec != "opus" {
			t.Errorf("publisher %+v", p)
		}
	})
	t.Run("attached with offer", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_attached_offer.json")
		if ev.JSEP == nil || ev.JSEP.Type != "offer" || !strings.Contains(ev.JSEP.SDP, "opus/48000") {
			t.Fatalf("jsep %+v", ev.JSEP)
		}
		if vr.Kind != "attached" || len(vr.Streams) != 1 || vr.Streams[0].Feed.IsZero() || vr.Streams[0].Mid != "0" || vr.Streams[0].FeedDisplay == "" {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("updated with offer", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_updated_offer.json")
		if ev.JSEP == nil || ev.JSEP.Type != "offer" || vr.Kind != "updated" || len(vr.Streams) != 2 || vr.Streams[0].Mid == vr.Streams[1].Mid {
			t.Errorf("%+v %+v", ev.JSEP != nil, vr)
		}
	})
	t.Run("updated without change", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_updated_empty.json")
		if ev.JSEP != nil || vr.Kind != "updated" || vr.Streams != nil {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("leaving someone", func(t *testing.T) {
		_, vr := videoRoomEvent(t, "videoroom_leaving.json")
		if vr.Leaving == nil || vr.Leaving.IsString() || LeftSelf(vr.Leaving) {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("leaving ourselves", func(t *testing.T) {
		_, vr := videoRoomEvent(t, "videoroom_leaving_ok.json")
		if !LeftSelf(vr.Leaving) {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("unpublished", func(t *testing.T) {
		_, vr := videoRoomEvent(t, "videoroom_unpublished.json")
		if vr.Unpublished == nil || vr.Unpublished.IsZero() || LeftSelf(vr.Unpublished) {
			t.Errorf("%+v", vr)
		}
	})
	t.Run("plugin error", func(t *testing.T) {
		ev, vr := videoRoomEvent(t, "videoroom_error_no_such_room.json")
		var pe *PluginError
		if err := ev.pluginError(); !errors.As(err, &pe) || pe.Code != VideoRoomErrNoSuchRoom || vr.ErrorCode != VideoRoomErrNoSuchRoom {
			t.Errorf("%v %+v", err, vr)
		}
	})
	t.Run("string ids", func(t *testing.T) {
		_, vr := videoRoomEvent(t, "synthetic_videoroom_string_ids.json")
		if vr.Room != StrID("town-hall") || vr.Publishers[0].ID != StrID("speaker-7f3a") {
			t.Errorf("%+v", vr)
		}
	})
}

func TestAudioBridgeEventFields(t *testing.T) {
	ev, err := ParseEvent(readEvent(t, "audiobridge_list.json"))
	if err != nil {
		t.Fatal(err)
	}
	ab, err := ev.AudioBridge()
	if err != nil || len(ab.List) == 0 || ab.List[0].SamplingRate != 48000 {
		t.Fatalf("%+v %v", ab, err)
	}
	if _, err := ev.VideoRoom(); err == nil {
		t.Error("an AudioBridge event parsed as VideoRoom")
	}
}

func TestCoreEventFields(t *testing.T) {
	ev, err := ParseEvent(readEvent(t, "synthetic_error_no_session.json"))
	if err != nil || ev.Error == nil || !errors.Is(ev.Error, ErrSessionGone) {
		t.Fatalf("%+v %v", ev, err)
	}
	ev, err = ParseEvent(readEvent(t, "synthetic_slowlink.json"))
	if err != nil || ev.Kind != KindSlowLink || ev.Media != "audio" || ev.Lost != 12 || ev.Uplink == nil || !*ev.Uplink {
		t.Fatalf("%+v %v", ev, err)
	}
	ev, err = ParseEvent(readEvent(t, "hangup.json"))
	if err != nil || ev.Kind != KindHangup || ev.Reason == "" || ev.Sender == 0 {
		t.Fatalf("%+v %v", ev, err)
	}
}

func TestParseEvents(t *testing.T) {
	one := readEvent(t, "webrtcup.json")
	two := readEvent(t, "videoroom_publishers.json")
	cases := []struct {
		name    string
		body    string
		n       int
		wantErr bool
	}{
		{"object", string(one), 1, false},
		{"array", "[" + string(one) + "," + string(two) + "]", 2, false},
		{"empty array", "[]", 0, false},
		{"bad element kept out", "[" + string(one) + `,{"janus":3},{}]`, 1, true},
		{"not json", "<html>", 0, true},
		{"empty", "  ", 0, true},
		{"string", `"keepalive"`, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := ParseEvents([]byte(c.body))
			if len(evs) != c.n || (err != nil) != c.wantErr {
				t.Fatalf("%d events, err %v; want %d, error %v", len(evs), err, c.n, c.wantErr)
			}
		})
	}
}

func FuzzParseEvents(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	var all [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		all = append(all, bytes.TrimSpace(b))
	}
	f.Add(append(append([]byte("["), bytes.Join(all, []byte(","))...), ']'))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _ := ParseEvents(body)
		for _, ev := range evs {
			if ev.Kind == "" {
				t.Fatal("event without kind accepted")
			}
			// Everything a consumer does with an event must be safe too.
			_ = ev.pluginError()
			if vr, err := ev.VideoRoom(); err == nil {
				_ = LeftSelf(vr.Leaving)
				for _, st := range vr.Streams {
					_ = st.Feed.String()
				}
			}
			_, _ = ev.AudioBridge()
			if ev.Error != nil {
				_ = ev.Error.Error()
				_ = errors.Is(ev.Error, ErrSessionGone)
			}
		}
	})
}

func TestIDJSON(t *testing.T) {
	cases := []struct {
		in   string
		want ID
		out  string
	}{
		{`1234`, NumID(1234), `1234`},
		{`18446744073709551615`, NumID(1<<64 - 1), `18446744073709551615`},
		{`"lobby"`, StrID("lobby"), `"lobby"`},
		{`"1234"`, StrID("1234"), `"1234"`},
		{`"ok"`, StrID("ok"), `"ok"`},
	}
	for _, c := range cases {
		var id ID
		if err := json.Unmarshal([]byte(c.in), &id); err != nil || id != c.want {
			t.Errorf("unmarshal %s = %v, %v", c.in, id, err)
			continue
		}
		if out, err := json.Marshal(id); err != nil || string(out) != c.out {
			t.Errorf("marshal %v = %s, %v", id, out, err)
		}
	}
	for _, bad := range []string{`-1`, `1.5`, `true`, `{}`, `18446744073709551616`} {
		var id ID
		if err := json.Unmarshal([]byte(bad), &id); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
	if ParseID("42") != NumID(42) || ParseID("room-a") != StrID("room-a") || !(ID{}).IsZero() || NumID(0) != (ID{}) {
		t.Error("ParseID or IsZero")
	}
	// A zero ID is left out of requests (Janus picks one).
	b, _ := json.Marshal(PublisherJoin{Room: NumID(1)})
	if strings.Contains(string(b), `"id"`) {
		t.Errorf("zero ID marshalled: %s", b)
	}
}

func FuzzID(f *testing.F) {
	for _, s := range []string{`1`, `"a"`, `null`, `-0`, `1e3`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id ID
		if json.Unmarshal(b, &id) != nil {
			return
		}
		out, err := json.Marshal(id)
		if err != nil {
			t.Fatalf("marshal %v: %v", id, err)
		}
		var back ID
		if err := json.Unmarshal(out, &back); err != nil || back != id {
			t.Fatalf("round trip %s -> %s -> %v (%v)", b, out, back, err)
		}
	})
}

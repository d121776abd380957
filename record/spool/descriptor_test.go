package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
)

var update = flag.Bool("update", false, "rewrite testdata/descriptor-v1.json")

const fixture = "testdata/descriptor-v1.json"

// fixtureDescriptor is the descriptor of testSeg("alice", 3) with its
// clocks fixed, as this build writes it.
func fixtureDescriptor(t *testing.T) []byte {
	t.Helper()
	seg := testSeg("alice", 3)
	data := testData(seg)
	at := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	d, err := newDescriptor(testProd, seg, segKey(seg), int64(len(data)), sha(data), at)
	if err != nil {
		t.Fatal(err)
	}
	d.Event.Time = at
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Descriptors written by earlier builds of format 1 stay readable, and this
// build still writes that format.
func TestDescriptorFixture(t *testing.T) {
	want := fixtureDescriptor(t)
	if *update {
		if err := os.WriteFile(fixture, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("this build writes descriptors that differ from %s; if the change is compatible, run with -update, otherwise bump DescriptorFormat", fixture)
	}
	d, err := ParseDescriptor(b)
	if err != nil {
		t.Fatal(err)
	}
	seg := testSeg("alice", 3)
	if d.Key != segKey(seg) || d.Track() != seg.Timeline.Track || d.Event.EventID != segEventID(seg) {
		t.Errorf("fixture parsed to %+v", d)
	}
	stored := time.Date(2026, 11, 25, 10, 2, 1, 0, time.UTC)
	e, err := d.Announcement(stored)
	if err != nil {
		t.Fatal(err)
	}
	p := payloadOf(t, e)
	if p.Key != d.Key || p.Size != d.Size || p.SHA256 != d.SHA256 || p.Seq != 3 || !e.Hops.Stored.Equal(stored) || e.Time.Before(stored) {
		t.Errorf("announcement %+v payload %+v", e, p)
	}
	if d.Event.Hops.Stored != nil || d.Event.Time.Equal(stored) {
		t.Error("Announcement changed the spooled envelope")
	}
}

func FuzzParseDescriptor(f *testing.F) {
	valid, err := os.ReadFile(fixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(append(bytes.Clone(valid), "{}"...))
	f.Add(bytes.Replace(valid, []byte(`"format": 1`), []byte(`"format": 2`), 1))
	f.Add(bytes.Replace(valid, []byte(`"seq": 3`), []byte(`"seq": -3`), 1))
	f.Add(bytes.Replace(valid, []byte(`"anchor": "rtcp_sr"`), []byte(`"anchor": "rtcp sr"`), 1))
	for _, s := range []string{"", "null", "{}", "[]", `{"format":1}`, `{"format":1,"event":{}}`, `{"format":1,"event":null,"key":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		// Whatever is accepted can be uploaded and announced.
		tl := d.Event.Timeline
		if d.Key != event.SegmentKey(d.Event.Room, d.Event.Session, *tl) || d.Track() == "" {
			t.Fatalf("accepted a descriptor whose key does not follow from its timeline: %q", d.Key)
		}
		for k, v := range d.Metadata() {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7e {
					t.Fatalf("metadata %s is not printable ASCII", k)
				}
			}
		}
		e, err := d.Announcement(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := event.Decode(raw); err != nil {
			t.Fatalf("announcement of an accepted descriptor does not decode: %v", err)
		}
		// Encoding it again gives a descriptor that parses the same.
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDescriptor(again)
		if err != nil {
			t.Fatalf("re-encoded descriptor rejected: %v", err)
		}
		if d2.Key != d.Key || d2.SHA256 != d.SHA256 || d2.Size != d.Size || d2.Event.EventID != d.Event.EventID {
			t.Fatal("re-encoded descriptor differs")
		}
	})
}

// A fuzzed descriptor that the parser rejects is moved aside by the spool,
// never fatal; one it accepts is listed.
func TestFuzzCorpusThroughSpool(t *testing.T) {
	valid, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{valid, valid[:40], []byte("\x00\xff"), bytes.Repeat([]byte("["), 100000)}
	for i, in := range inputs {
		dir := t.TempDir()
		s := openSpool(t, dir)
		entry := filepath.Join(dir, pendingDir, formatName(int64(i+1)))
		if err := os.Mkdir(entry, 0o750); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(entry, descFile), string(in))
		seg := testSeg("alice", 3)
		writeFile(t, filepath.Join(entry, dataFile), string(testData(seg)))
		got, err := s.Pending()
		if err != nil {
			t.Fatalf("input %d: Pending: %v", i, err)
		}
		_, perr := ParseDescriptor(in)
		if ok := perr == nil; ok != (len(got) == 1) || ok == (len(dirNames(t, filepath.Join(dir, rejectedDir))) == 1) {
			t.Errorf("input %d: parse error %v, %d pending, rejected/ %v", i, perr, len(got), dirNames(t, filepath.Join(dir, rejectedDir)))
		}
	}
}

package ogg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/earshot/earshot/record/ogg/oggtest"
)

// These tests check this package against independent implementations from
// the speech test bed (testbed/speech.sh): libogg, through sox's Vorbis
// writer, and libopusfile, through opusdec and opusinfo.

// TestLibogg rewrites streams that libogg paginated (sox writes Ogg Vorbis
// with ogg_stream_pageout and ogg_stream_flush; libopusenc, behind
// opusenc, has a packer of its own) and expects the same bytes: page by
// page through Page.Append, and packet by packet through Writer, ending
// pages where libogg did at packet boundaries and letting the Writer split
// packets over full pages itself. The 64-channel stream has packets of
// tens of kilobytes, which libogg continues over pages of 255 lacing
// values.
func TestLibogg(t *testing.T) {
	sox := oggtest.Tool(t, "SOX")
	tests := []struct {
		name      string
		args      []string
		continued bool // the stream must have continued packets
	}{
		{"mono tone", []string{"-c", "1", "-r", "48000", "synth", "1", "sine", "440", "vol", "0.5"}, false},
		{"64-channel noise", []string{"-c", "64", "-r", "48000", "-C", "10", "synth", "0.3", "whitenoise", "vol", "0.5"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "libogg.ogg")
			// sox -n OPTIONS… out.ogg EFFECTS…: the output options (-c,
			// -r, -C) come before the file, the effects after it.
			args := []string{"-n"}
			eff := 0
			for i, a := range tt.args {
				if a == "synth" {
					eff = i
					break
				}
			}
			args = append(append(append(args, tt.args[:eff]...), out), tt.args[eff:]...)
			if msg, err := exec.Command(sox, args...).CombinedOutput(); err != nil {
				t.Fatalf("sox %v: %v\n%s", args, err, msg)
			}
			orig, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			pages := readPages(t, orig)
			var again []byte
			continued := false
			for _, p := range pages {
				if again, err = p.Append(again); err != nil {
					t.Fatal(err)
				}
				continued = continued || p.Flags&FlagContinued != 0
			}
			if !bytes.Equal(again, orig) {
				t.Fatalf("pages re-encoded: %d bytes differ from libogg's %d", len(again), len(orig))
			}
			if continued != tt.continued {
				t.Fatalf("continued packets: %v, want %v", continued, tt.continued)
			}

			// Where libogg ended pages: after which packet, with which
			// granule position.
			type end struct {
				granule int64
				brk     bool // the page ends at this packet's end
			}
			var ends []end
			for _, p := range pages {
				n := 0
				for _, l := range p.Lacing {
					if l < 255 {
						n++
					}
				}
				for i := range n {
					last := i == n-1
					ends = append(ends, end{p.Granule, last && p.Lacing[len(p.Lacing)-1] < 255})
				}
			}
			packets, err := readPackets(NewReader(bytes.NewReader(orig)))
			if err != nil {
				t.Fatal(err)
			}
			if len(packets) != len(ends) {
				t.Fatalf("%d packets, %d ends counted from lacing values", len(packets), len(ends))
			}
			var b bytes.Buffer
			w := NewWriter(&b, WriterConfig{Serial: pages[0].Serial, PageBytes: 1 << 30})
			for i, p := range packets {
				if err := w.WritePacket(p.Data, ends[i].granule); err != nil {
					t.Fatal(err)
				}
				if ends[i].brk {
					if err := w.EndPage(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := b.Bytes(); !bytes.Equal(got, orig) {
				i := 0
				for i < min(len(got), len(orig)) && got[i] == orig[i] {
					i++
				}
				t.Fatalf("packets rewritten: %d bytes, libogg's %d, first difference at byte %d", len(got), len(orig), i)
			}
		})
	}
}

// fixturePackets returns the audio packets of the recorder's fixture
// (opusenc output, 600 packets of 20 ms, pre-skip 312).
func fixturePackets(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "speech_tones.opus"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpusReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, err := o.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Data)
	}
}

// decode checks a stream with opusinfo and decodes it with opusdec.
func decode(t *testing.T, stream []byte) []int16 {
	t.Helper()
	oggtest.Opusinfo(t, stream)
	return oggtest.Decode(t, stream)
}

// TestOpusdecSampleCount writes real speech packets, a gap filled with
// Silence and a trimmed end, and expects libopusfile to output exactly the
// samples between the pre-skip and the final granule position.
func TestOpusdecSampleCount(t *testing.T) {
	speech := fixturePackets(t)[:100] // 2 s
	tests := []struct {
		name      string
		pageBytes int
		gap       int64 // samples of silence after the first half
		trim      int64
	}{
		{"page per packet", 0, 0, 0},
		{"4 KiB pages, gap, trim", 4096, 48000 + 120 + 240, 700},
		{"one page, trim", 1 << 20, 960, 959},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := NewOpusWriter(&b, OpusWriterConfig{Serial: 11, PageBytes: tt.pageBytes,
				Head: Head{Channels: 1, PreSkip: 312, InputRate: 48000}, Tags: Tags{Vendor: "earshot"}})
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range speech {
				if i == len(speech)/2 {
					for left := tt.gap; left > 0; {
						s, n := Silence(left)
						if _, err := w.WritePacket(s); err != nil {
							t.Fatal(err)
						}
						left -= int64(n)
					}
				}
				if _, err := w.WritePacket(p); err != nil {
					t.Fatal(err)
				}
			}
			if want := int64(len(speech))*960 + tt.gap; w.Granule() != want {
				t.Fatalf("granule %d after %d samples of packets", w.Granule(), want)
			}
			end := w.Granule() - tt.trim
			if err := w.CloseAt(end); err != nil {
				t.Fatal(err)
			}
			if got, want := int64(len(decode(t, b.Bytes()))), end-312; got != want {
				t.Fatalf("opusdec output %d samples, want %d (final granule %d - pre-skip 312)", got, want, end)
			}
		})
	}
}

// TestSilenceDecodes checks that each Silence packet decodes to exactly
// its duration of digital zeros (after 80 ms of them as pre-skip, which
// opusinfo wants).
func TestSilenceDecodes(t *testing.T) {
	const preSkip = 3840
	for _, n := range []int64{960, 480, 240, 120} {
		var b bytes.Buffer
		w, err := NewOpusWriter(&b, OpusWriterConfig{Serial: 1, Head: Head{Channels: 1, PreSkip: preSkip, InputRate: 48000}})
		if err != nil {
			t.Fatal(err)
		}
		for range preSkip/n + 3 {
			p, k := Silence(n)
			if int64(k) != n {
				t.Fatalf("Silence(%d) lasts %d", n, k)
			}
			if _, err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		pcm := decode(t, b.Bytes())
		if int64(len(pcm)) != 3*n {
			t.Fatalf("%d-sample silence: decoded %d samples, want %d", n, len(pcm), 3*n)
		}
		for i, v := range pcm {
			if v != 0 {
				t.Fatalf("%d-sample silence: sample %d is %d", n, i, v)
			}
		}
	}
}

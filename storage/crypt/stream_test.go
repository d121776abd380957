package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/earshot/earshot/event"
)

// sealerKeys is what both key sets offer for streams.
type sealerKeys interface {
	SealTo(ctx context.Context, ref event.KeyRef, name string, w io.Writer) (io.WriteCloser, error)
	OpenFrom(ctx context.Context, ref event.KeyRef, name string, r io.Reader) (io.Reader, error)
}

func TestSealStreamMemory(t *testing.T) {
	m := NewMemory()
	testSealStream(t, m, func(ref event.KeyRef) { m.Shred(ref.ID) })
}

func TestSealStreamKeyring(t *testing.T) {
	k := newKeyring(t, newKEK(t), openLocal(t), -1)
	testSealStream(t, k, func(ref event.KeyRef) {
		if err := k.Shred(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	})
}

// testSealStream: written bytes come back whole at every size around the
// frame boundary, in writes of any size; the sealed stream holds none of
// the plaintext; another name, altered or truncated bytes fail; after a
// shred nothing opens.
func testSealStream(t *testing.T, k sealerKeys, shred func(event.KeyRef)) {
	ctx := context.Background()
	ref := event.KeyRef{ID: event.KeyID("ses_s", "p1_p"), Room: "r1_r", Session: "ses_s", Speaker: "p1_p"}
	for _, n := range []int{0, 1, FrameSize - 1, FrameSize, FrameSize + 1, 3*FrameSize + 5} {
		pt := make([]byte, n)
		rand.Read(pt)
		copy(pt, "OggS speech canary")
		var sealed bytes.Buffer
		w, err := k.SealTo(ctx, ref, "entry-1", &sealed)
		if err != nil {
			t.Fatal(err)
		}
		for rest := pt; len(rest) > 0; {
			c := min(len(rest), 1000+len(rest)%7777)
			if _, err := w.Write(rest[:c]); err != nil {
				t.Fatal(err)
			}
			rest = rest[c:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if n > 0 && bytes.Contains(sealed.Bytes(), []byte("speech canary")) {
			t.Fatalf("%d bytes: plaintext in the sealed stream", n)
		}
		r, err := k.OpenFrom(ctx, ref, "entry-1", bytes.NewReader(sealed.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: got %d back, %v", n, len(got), err)
		}
		bad := map[string][]byte{"truncated": sealed.Bytes()[:sealed.Len()-1]}
		flipped := bytes.Clone(sealed.Bytes())
		flipped[len(flipped)-1] ^= 1
		bad["altered"] = flipped
		for what, b := range bad {
			r, err := k.OpenFrom(ctx, ref, "entry-1", bytes.NewReader(b))
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%d bytes, %s: %v, want ErrDecrypt", n, what, err)
			}
		}
		r, err = k.OpenFrom(ctx, ref, "entry-2", bytes.NewReader(sealed.Bytes()))
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%d bytes under another name: %v, want ErrDecrypt", n, err)
		}
	}
	var sealed bytes.Buffer
	w, _ := k.SealTo(ctx, ref, "x", &sealed)
	w.Write([]byte("x"))
	w.Close()
	shred(ref)
	if _, err := k.OpenFrom(ctx, ref, "x", bytes.NewReader(sealed.Bytes())); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("after the shred: %v, want ErrKeyDestroyed", err)
	}
	if _, err := k.SealTo(ctx, ref, "y", io.Discard); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("sealing after the shred: %v, want ErrKeyDestroyed", err)
	}
}

package crypt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// conformanceRef encrypts every object of the conformance suite (whose
// metadata has no session) under one test key.
func conformanceRef(string, map[string]string) (event.KeyRef, error) {
	return Ref("room-conf", "ses-conf", "spk-conf"), nil
}

// newEncryptingStore wraps data in a Store that encrypts every key; the
// keyring keeps its keys in a store of its own, so listings of data stay
// exact for the suite.
func newEncryptingStore(t testing.TB, data storage.Store, keys KeyStore) *Store {
	return NewStore(data, newKeyring(t, newKEK(t), keys, 0), WithProtectedPrefixes(""), WithKeyRef(conformanceRef))
}

// The storage conformance suite, with every object encrypted: the Store
// behaves as any storage.Store.
func TestStoreConformanceLocal(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return newEncryptingStore(t, openLocal(t), openLocal(t))
	})
}

// And with the default prefixes (the suite's keys pass through).
func TestStoreConformanceLocalDefaultPrefixes(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s := NewStore(openLocal(t), newKeyring(t, newKEK(t), openLocal(t), 0))
		return storeWithRoundTripMeta{s}
	})
}

// storeWithRoundTripMeta adds the session the default key choice needs to
// the one protected object of the suite (audio/... in RoundTrip, which
// carries a room but no session), and hides it again on the way out.
type storeWithRoundTripMeta struct{ *Store }

func (s storeWithRoundTripMeta) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if s.Protects(key) {
		md := map[string]string{"session": "ses-conf"}
		for k, v := range opts.Metadata {
			md[k] = v
		}
		opts.Metadata = md
	}
	info, err := s.Store.Put(ctx, key, r, size, opts)
	return hideSession(info), err
}

func (s storeWithRoundTripMeta) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key)
	return rc, hideSession(info), err
}

func (s storeWithRoundTripMeta) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := s.Store.Stat(ctx, key)
	return hideSession(info), err
}

func hideSession(info storage.ObjectInfo) storage.ObjectInfo {
	if info.Metadata["session"] == "ses-conf" {
		delete(info.Metadata, "session")
	}
	return info
}

// newLocalStore returns a Store over a fresh local store that also holds
// the keyring's keys (the production layout).
func newLocalStore(t *testing.T) (*Store, *storage.Local, *Keyring) {
	inner := openLocal(t)
	keys := newKeyring(t, newKEK(t), inner, 0)
	return NewStore(inner, keys), inner, keys
}

func TestStoreEncryptsProtectedPrefixes(t *testing.T) {
	ctx := testCtx(t)
	s, inner, _ := newLocalStore(t)
	seg := oggLike(t, 200<<10)
	key := "audio/room1/ses_1/trk_1/000000000000000-000000000047999.ogg"
	md := segMeta("room1", "ses_1", "spk_a")

	info, err := s.Put(ctx, key, bytes.NewReader(seg), int64(len(seg)), storage.PutOptions{IfAbsent: true, SHA256: hexSHA(seg), ContentType: "audio/ogg", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(seg)) || info.SHA256 != hexSHA(seg) || info.Metadata["speaker"] != "spk_a" || info.Metadata[MetaKeyID] != "" {
		t.Errorf("Put info %+v: want the plaintext's size and SHA-256, caller metadata only", info)
	}
	raw, rawInfo := rawGet(t, inner, key)
	if bytes.Contains(raw, []byte("OggS")) || bytes.Contains(raw, []byte("quick brown fox")) {
		t.Fatal("the stored object contains plaintext")
	}
	if !bytes.HasPrefix(raw, []byte(objectMagic)) || rawInfo.Metadata[MetaKeyID] != event.KeyID("ses_1", "spk_a") {
		t.Errorf("stored object: header %q, key %q", raw[:8], rawInfo.Metadata[MetaKeyID])
	}
	if int64(len(raw)) != CipherSize(int64(len(seg)), keyIDLen) {
		t.Errorf("stored %d bytes, CipherSize says %d", len(raw), CipherSize(int64(len(seg)), keyIDLen))
	}
	got, ginfo, err := readAll(t, s, key)
	if err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("Get: %v (equal %v)", err, bytes.Equal(got, seg))
	}
	if ginfo.SHA256 != hexSHA(seg) || ginfo.Size != int64(len(seg)) {
		t.Errorf("Get info %+v", ginfo)
	}
	// The uploader's check after a lost confirmation: ErrExists with the
	// plaintext's SHA-256.
	info, err = s.Put(ctx, key, bytes.NewReader(seg), int64(len(seg)), storage.PutOptions{IfAbsent: true, SHA256: hexSHA(seg), Metadata: md})
	if !errors.Is(err, storage.ErrExists) || info.SHA256 != hexSHA(seg) {
		t.Errorf("second create-only put: %v, sha %q; want ErrExists with the plaintext's SHA-256", err, info.SHA256)
	}
	for v, err := range s.List(ctx, "audio/") {
		if err != nil || v.Size != int64(len(seg)) {
			t.Errorf("List: %+v, %v; want the plaintext size", v, err)
		}
	}

	// Other prefixes pass through; the keyring's are refused.
	if _, err := s.Put(ctx, "audit/0001.json", strings.NewReader("{}"), 2, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := rawGet(t, inner, "audit/0001.json"); string(raw) != "{}" {
		t.Errorf("audit object stored as %q", raw)
	}
	if _, err := s.Put(ctx, "keys/room1/ses_1/spk_a", strings.NewReader("{}"), 2, storage.PutOptions{}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("put into the keyring's prefix: %v, want ErrInvalidKey", err)
	}
	// Protected objects without room and session are refused, not stored in
	// the clear.
	for _, md := range []map[string]string{nil, {"room": "room1"}, {"session": "ses_1"}} {
		_, err := s.Put(ctx, "manifests/room1/ses_1.json", strings.NewReader("{}"), 2, storage.PutOptions{Metadata: md})
		var se *storage.Error
		if !errors.Is(err, ErrNoKeyRef) || !errors.Is(err, storage.ErrInvalidMetadata) || !errors.As(err, &se) || se.Op != "put" {
			t.Errorf("protected put with metadata %v: %v; want a put error wrapping ErrNoKeyRef and ErrInvalidMetadata", md, err)
		}
	}
	if _, err := inner.Stat(ctx, "manifests/room1/ses_1.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("refused put stored something: %v", err)
	}
	if _, err := s.Put(ctx, "audio/x", strings.NewReader("{}"), 2, storage.PutOptions{Metadata: map[string]string{"crypt-key": "k"}}); !errors.Is(err, storage.ErrInvalidMetadata) {
		t.Errorf("put with a crypt- metadata key: %v, want ErrInvalidMetadata", err)
	}
	// A plaintext object planted under a protected prefix is not served.
	rawPut(t, inner, "audio/room1/ses_1/planted.ogg", seg, md)
	if _, _, err := readAll(t, s, "audio/room1/ses_1/planted.ogg"); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("Get of a planted plaintext object: %v, want ErrNotEncrypted", err)
	}
}

// Tampering with the stored object, by someone who can also fix up the
// store's own checksum, fails decryption: never garbage.
func TestStoreDetectsTampering(t *testing.T) {
	ctx := testCtx(t)
	s, inner, _ := newLocalStore(t)
	md := segMeta("room1", "ses_1", "spk_a")
	plain := oggLike(t, 3*FrameSize+100)
	key := "audio/room1/ses_1/trk_1/a.ogg"
	if _, err := s.Put(ctx, key, bytes.NewReader(plain), int64(len(plain)), storage.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	raw, rawInfo := rawGet(t, inner, key)
	hdr := headerLen(keyIDLen)
	frame := FrameSize + tagSize
	other := "audio/room1/ses_1/trk_1/b.ogg"
	for _, tc := range []struct {
		name string
		key  string
		mod  func([]byte) []byte
		want error
	}{
		{"bit in frame 0", key, func(b []byte) []byte { b[hdr+10] ^= 1; return b }, ErrDecrypt},
		{"bit in last frame", key, func(b []byte) []byte { b[len(b)-20] ^= 0x80; return b }, ErrDecrypt},
		{"bit in a tag", key, func(b []byte) []byte { b[hdr+frame-1] ^= 1; return b }, ErrDecrypt},
		{"bit in the nonce prefix", key, func(b []byte) []byte { b[hdr-1] ^= 1; return b }, ErrDecrypt},
		{"key ID changed", key, func(b []byte) []byte { b[len(objectMagic)+5] ^= 1; return b }, ErrDecrypt},
		{"truncated at a frame boundary", key, func(b []byte) []byte { return b[:hdr+2*frame] }, ErrDecrypt},
		{"truncated mid-frame", key, func(b []byte) []byte { return b[:hdr+frame+100] }, ErrDecrypt},
		{"header only", key, func(b []byte) []byte { return b[:hdr] }, ErrDecrypt},
		{"half a header", key, func(b []byte) []byte { return b[:hdr/2] }, ErrDecrypt},
		{"frames swapped", key, func(b []byte) []byte {
			out := bytes.Clone(b)
			copy(out[hdr:], b[hdr+frame:hdr+2*frame])
			copy(out[hdr+frame:], b[hdr:hdr+frame])
			return out
		}, ErrDecrypt},
		{"frame dropped", key, func(b []byte) []byte { return append(bytes.Clone(b[:hdr+frame]), b[hdr+2*frame:]...) }, ErrDecrypt},
		{"bytes appended", key, func(b []byte) []byte { return append(b, 0, 1, 2) }, ErrDecrypt},
		{"moved to another key", other, func(b []byte) []byte { return b }, ErrDecrypt},
		{"not encrypted at all", key, func([]byte) []byte { return plain }, ErrNotEncrypted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rawPut(t, inner, tc.key, tc.mod(bytes.Clone(raw)), rawInfo.Metadata)
			got, _, err := readAll(t, s, tc.key)
			if !errors.Is(err, tc.want) {
				t.Errorf("Get: %v, want %v", err, tc.want)
			}
			if bytes.Contains(got, []byte("fox")) && len(got) >= len(plain) {
				t.Errorf("returned the whole plaintext despite the tampering")
			}
		})
	}
	// Metadata that lies about the plaintext fails the end of the read.
	md2 := map[string]string{}
	for k, v := range rawInfo.Metadata {
		md2[k] = v
	}
	md2[metaSHA256] = hexSHA([]byte("other"))
	rawPut(t, inner, key, raw, md2)
	if _, _, err := readAll(t, s, key); !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("Get with a wrong recorded SHA-256: %v, want ErrChecksum", err)
	}
}

func TestStoreWrongKey(t *testing.T) {
	ctx := testCtx(t)
	inner, keyStore := openLocal(t), openLocal(t)
	s := NewStore(inner, newKeyring(t, newKEK(t), keyStore, 0))
	plain := oggLike(t, 1000)
	md := segMeta("room1", "ses_1", "spk_a")
	key := "audio/room1/ses_1/trk_1/a.ogg"
	if _, err := s.Put(ctx, key, bytes.NewReader(plain), int64(len(plain)), storage.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	// Another deployment's KEK over the same wrapped keys.
	wrongKEK := NewStore(inner, newKeyring(t, newKEK(t), keyStore, 0))
	if _, _, err := readAll(t, wrongKEK, key); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get with a wrong KEK: %v, want ErrDecrypt", err)
	}
	// Another data key under the same ID (a keyring that made its own).
	wrongDEK := NewStore(inner, newKeyring(t, newKEK(t), openLocal(t), 0))
	if _, err := wrongDEK.keys.dataKey(ctx, Ref("room1", "ses_1", "spk_a"), true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, wrongDEK, key); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get with a wrong data key: %v, want ErrDecrypt", err)
	}
	// Metadata pointing at another speaker's key.
	raw, rawInfo := rawGet(t, inner, key)
	rawInfo.Metadata["speaker"] = "spk_b"
	rawPut(t, inner, key, raw, rawInfo.Metadata)
	if _, _, err := readAll(t, s, key); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get with metadata naming another key: %v, want ErrDecrypt", err)
	}
}

func TestStoreShred(t *testing.T) {
	ctx := testCtx(t)
	s, _, keys := newLocalStore(t)
	put := func(key, speaker string) {
		t.Helper()
		b := oggLike(t, 5000)
		if _, err := s.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Metadata: segMeta("room1", "ses_1", speaker)}); err != nil {
			t.Fatal(err)
		}
	}
	put("audio/room1/ses_1/trk_a/1.ogg", "spk_a")
	put("audio/room1/ses_1/trk_b/1.ogg", "spk_b")
	put("manifests/room1/ses_1.json", "")
	if _, err := keys.ShredSpeaker(ctx, "spk_a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, s, "audio/room1/ses_1/trk_a/1.ogg"); !errors.Is(err, ErrKeyDestroyed) || !errors.Is(err, storage.ErrErased) {
		t.Errorf("Get after shredding the speaker: %v, want ErrKeyDestroyed and storage.ErrErased", err)
	}
	for _, k := range []string{"audio/room1/ses_1/trk_b/1.ogg", "manifests/room1/ses_1.json"} {
		if _, _, err := readAll(t, s, k); err != nil {
			t.Errorf("Get %s after shredding another speaker: %v", k, err)
		}
	}
	// Puts under a shredded key fail instead of making a new key.
	b := oggLike(t, 10)
	if _, err := s.Put(ctx, "audio/room1/ses_1/trk_a/2.ogg", bytes.NewReader(b), 10, storage.PutOptions{Metadata: segMeta("room1", "ses_1", "spk_a")}); !errors.Is(err, ErrKeyDestroyed) || !errors.Is(err, storage.ErrErased) {
		t.Errorf("Put under a shredded key: %v, want ErrKeyDestroyed and storage.ErrErased", err)
	}
	if _, err := keys.ShredRoom(ctx, "room1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, s, "manifests/room1/ses_1.json"); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Get of the session's manifest after shredding the room: %v, want ErrKeyDestroyed", err)
	}
}

// Puts without a known SHA-256 from a plain stream buffer the ciphertext;
// beyond spoolMemBytes it goes to a temporary file.
func TestStoreLargeStream(t *testing.T) {
	ctx := testCtx(t)
	s, inner, _ := newLocalStore(t)
	plain := randBytes(t, spoolMemBytes+3*FrameSize+5)
	for _, size := range []int64{int64(len(plain)), -1} {
		info, err := s.Put(ctx, "exports/room1/big.bin", struct{ io.Reader }{bytes.NewReader(plain)}, size, storage.PutOptions{Metadata: segMeta("room1", "ses_1", "")})
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(plain)) || info.SHA256 != hexSHA(plain) {
			t.Errorf("size %d: info %+v", size, info)
		}
		got, _, err := readAll(t, s, "exports/room1/big.bin")
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: Get: %v", size, err)
		}
	}
	// A wrong announced SHA-256 stores nothing, on every path.
	for name, r := range map[string]io.Reader{"seekable": bytes.NewReader(plain), "stream": struct{ io.Reader }{bytes.NewReader(plain)}} {
		for _, size := range []int64{int64(len(plain)), -1} {
			_, err := s.Put(ctx, "exports/room1/wrong.bin", r, size, storage.PutOptions{SHA256: hexSHA([]byte("x")), Metadata: segMeta("room1", "ses_1", "")})
			if !errors.Is(err, storage.ErrChecksum) {
				t.Errorf("%s, size %d: wrong SHA-256: %v, want ErrChecksum", name, size, err)
			}
			if rs, ok := r.(io.Seeker); ok {
				rs.Seek(0, io.SeekStart)
			} else {
				r = struct{ io.Reader }{bytes.NewReader(plain)}
			}
		}
	}
	if _, err := inner.Stat(ctx, "exports/room1/wrong.bin"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a put with a wrong SHA-256 stored something: %v", err)
	}
}

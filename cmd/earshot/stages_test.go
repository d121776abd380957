package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

func testConfig(t *testing.T, dir string, sets ...string) config.Config {
	t.Helper()
	cfg, err := config.Load("", nil, append([]string{"data_dir=" + dir}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ResolvePaths()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Every stage gets encrypted storage and the durable keyring: with no
// configuration a KEK is created, what the stages store is ciphertext on
// disk, and a restarted process reads it back with the same KEK.
func TestRuntimeEncryptsStorage(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	log := slog.New(slog.DiscardHandler)
	rt, err := commandRuntime(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.Store.(*crypt.Store); !ok || rt.Keyring == nil || rt.Keys != rt.Keyring {
		t.Fatalf("runtime store %T, keys %T: want crypt.Store and the Keyring", rt.Store, rt.Keys)
	}
	fi, err := os.Stat(filepath.Join(dir, "secrets", "kek.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v, mode %v", err, fi)
	}
	seg := []byte("OggS\x00\x02 spoken words")
	key := "audio/room1/ses_1/trk_1/000000000000000-000000000047999.ogg"
	md := map[string]string{"room": "room1", "session": "ses_1", "speaker": "spk_1"}
	if _, err := rt.Store.Put(t.Context(), key, bytes.NewReader(seg), int64(len(seg)), storage.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	ref := crypt.Ref("room1", "ses_1", "spk_1")
	sealed, err := rt.Keys.Seal(t.Context(), ref, []byte("transcript text"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()

	local, err := storage.OpenLocal(cfg.Storage.Local.Dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := local.DataPath(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil || bytes.Contains(raw, []byte("OggS")) || bytes.Contains(raw, []byte("spoken")) {
		t.Fatalf("stored segment (%v) holds plaintext: %q", err, raw)
	}

	rt, err = commandRuntime(t.Context(), cfg, log) // a restart
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	rc, _, err := rt.Store.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("segment after restart: %q, %v", got, err)
	}
	if pt, err := rt.Keys.Open(t.Context(), ref, sealed, nil); err != nil || string(pt) != "transcript text" {
		t.Fatalf("sealed data after restart: %q, %v", pt, err)
	}
}

// Production provisions the KEK: a missing file fails at start, naming it.
func TestRuntimeRequiresKEK(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "crypto.create_kek=false")
	_, err := commandRuntime(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), cfg.Crypto.KEKFile) {
		t.Fatalf("start without the KEK file: %v; want an error naming %s", err, cfg.Crypto.KEKFile)
	}
	if _, err := os.Stat(cfg.Crypto.KEKFile); err == nil {
		t.Error("a KEK was created although create_kek is false")
	}
}

// An instance started with another KEK than the deployment's is refused.
func TestRuntimeRefusesOtherKEK(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	rt, err := commandRuntime(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()
	cfg.Crypto.KEKFile = filepath.Join(dir, "secrets", "other.key") // created anew
	if _, err := commandRuntime(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "crypto.kek_file") {
		t.Fatalf("start with another KEK: %v; want a refusal naming crypto.kek_file", err)
	}
}

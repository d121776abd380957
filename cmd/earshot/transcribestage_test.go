package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage"
)

func TestRoomLanguages(t *testing.T) {
	p, err := pseudonym.New([]byte("0123456789abcdef0123456789abcdef"), 1)
	if err != nil {
		t.Fatal(err)
	}
	other := p.Room("9999")
	lang := roomLanguages(config.RoomLanguages{Languages: []string{"1234=ar", other + "=fr", "*=en"}}, p)
	for _, tc := range []struct{ room, want string }{
		{p.Room("1234"), "ar"}, // a raw room ID, pseudonymised as ingest does
		{other, "fr"},          // a pseudonym, as it is
		{p.Room("5678"), "en"}, // the rest
	} {
		if got := lang(tc.room); got != tc.want {
			t.Errorf("language of %s = %q, want %q", tc.room, got, tc.want)
		}
	}
	if roomLanguages(config.RoomLanguages{}, p) != nil {
		t.Error("no rooms listed: want no lookup")
	}
	if got := roomLanguages(config.RoomLanguages{Languages: []string{"1234=ar"}}, p)(p.Room("5678")); got != "" {
		t.Errorf("unlisted room without *: %q, want the transcribe.language default", got)
	}
}

func TestTranscribeReplayUsage(t *testing.T) {
	var out, errs strings.Builder
	code := Main(context.Background(), []string{"transcribe", "-replay", "no-slash", "-data-dir", t.TempDir()}, &out, &errs)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (usage); stderr %s", code, errs.String())
	}
}

// TestTranscribeReplayIsAudited: a replay decrypts stored speech, so it is
// in the audit log (who, which session, why) before anything is read.
func TestTranscribeReplayIsAudited(t *testing.T) {
	dir := t.TempDir()
	room := "r1_" + strings.Repeat("d", 32)
	var out, errs strings.Builder
	Main(context.Background(), []string{"transcribe", "-replay", room + "/ses_gone", "-operator", "eng-7", "-reason", "new model",
		"-data-dir", dir, "-set", "transcribe.url=http://127.0.0.1:9/v1"}, &out, &errs)
	store, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for e, err := range audit.Entries(context.Background(), store) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{e.Operator, e.Action, e.Subject, e.Reason}, "|"))
	}
	if want := "eng-7|decrypt|" + room + "/ses_gone|new model"; len(got) != 1 || got[0] != want {
		t.Fatalf("audit entries %q, want [%q]\nstdout %s\nstderr %s", got, want, out.String(), errs.String())
	}
	code := Main(context.Background(), []string{"transcribe", "-replay", room + "/ses_gone", "-operator", "",
		"-data-dir", dir, "-set", "transcribe.url=http://127.0.0.1:9/v1"}, &out, &errs)
	if code != 2 {
		t.Errorf("replay without an operator: exit %d, want 2 (usage)", code)
	}
}

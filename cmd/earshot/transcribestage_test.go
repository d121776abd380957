package main

import (
	"context"
	"strings"
	"testing"

	"github.com/earshot/earshot/config"
	"github.com/earshot/earshot/pseudonym"
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

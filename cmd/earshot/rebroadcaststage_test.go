package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
)

// TestRebroadcastAllowPseudonymised: allow-listed rooms named as the room
// server names them become the pseudonyms the audio carries; a pseudonym
// stays as it is; until is parsed.
func TestRebroadcastAllowPseudonymised(t *testing.T) {
	p, err := pseudonym.New(bytes.Repeat([]byte{3}, pseudonym.MinSecretBytes), 1)
	if err != nil {
		t.Fatal(err)
	}
	already := p.Room("5678")
	got, err := rebroadcastAllow([]config.RebroadcastAllow{
		{Rooms: []string{" 1234", already}, Until: "2027-01-31", Reason: "simulcast"},
		{Rooms: []string{"a", "b"}, Reason: "r"},
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d pairs", len(got))
	}
	if got[0].Rooms != [2]string{p.Room("1234"), already} || !got[0].Until.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) || got[0].Reason != "simulcast" {
		t.Errorf("pair 0: %+v", got[0])
	}
	if got[1].Rooms != [2]string{p.Room("a"), p.Room("b")} || !got[1].Until.IsZero() {
		t.Errorf("pair 1: %+v", got[1])
	}
	if _, err := rebroadcastAllow([]config.RebroadcastAllow{{Rooms: []string{"a"}, Reason: "r"}}, p); err == nil {
		t.Error("a single room accepted")
	}
}

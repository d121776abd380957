package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestOpusPackets(t *testing.T) {
	pkts, err := OpusPackets("")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is 12 s of 20 ms packets.
	if len(pkts) < 590 || len(pkts) > 610 {
		t.Errorf("%d packets, want about 600 (12 s of 20 ms)", len(pkts))
	}
	for i, p := range pkts {
		if len(p) == 0 {
			t.Fatalf("packet %d is empty", i)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.opus")
	if err := os.WriteFile(bad, []byte("OggS not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(t.TempDir(), "missing.opus")} {
		if _, err := OpusPackets(path); err == nil {
			t.Errorf("%s: no error", filepath.Base(path))
		}
	}
}

func TestStartPacketLoadChecksItsConfig(t *testing.T) {
	pkts := [][]byte{{0xf8, 0xff, 0xfe}}
	for _, tt := range []struct {
		name string
		cfg  PacketLoadConfig
	}{
		{"no rooms", PacketLoadConfig{Speakers: 5, Packets: pkts}},
		{"no speakers", PacketLoadConfig{Rooms: []uint64{1}, Packets: pkts}},
		{"no packets", PacketLoadConfig{Rooms: []uint64{1}, Speakers: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := StartPacketLoad(context.Background(), tt.cfg); err == nil {
				_ = l.Close()
				t.Fatal("started")
			}
		})
	}
}

package webrtcbench

import (
	"testing"
	"time"
)

// TestWebRTCPathGapFree runs the benchmark's machinery on a few tracks: both
// programs build, negotiate over loopback, and every track is recorded
// without a gap.
func TestWebRTCPathGapFree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes and records for a few seconds")
	}
	res := runPath(t, buildPrograms(t), pathRun{tracks: 6, pcs: 2, warmup: time.Second, window: 2 * time.Second})
	if res.gaps != nil {
		t.Fatalf("output is not gap-free:\n%v", res.gaps)
	}
	if res.cpu <= 0 {
		t.Errorf("receiver CPU time over the window: %v", res.cpu)
	}
}

func TestCheckLoopbackSDP(t *testing.T) {
	tests := []struct {
		name, sdp string
		ok        bool
	}{
		{"loopback host", "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n", true},
		{"other address", "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=candidate:2 1 udp 2130706431 10.0.0.5 50001 typ host\r\n", false},
		{"tcp", "a=candidate:1 1 tcp 2130706431 127.0.0.1 9 typ host tcptype active\r\n", false},
		{"server reflexive", "a=candidate:1 1 udp 1694498815 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0\r\n", false},
		{"none", "v=0\r\n", false},
	}
	for _, tt := range tests {
		if err := CheckLoopbackSDP(tt.sdp); (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

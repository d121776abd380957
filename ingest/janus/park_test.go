package janus

import (
	"strings"
	"testing"
)

// TestParkInactive: inactive audio m-lines of Janus's offer reach pion as
// sendonly without streams, and the answer Janus gets says inactive for
// exactly those; active, rejected (port 0) and data m-lines are left alone.
func TestParkInactive(t *testing.T) {
	offer := strings.Join([]string{
		"v=0", "o=- 1 2 IN IP4 10.77.0.2", "s=VideoRoom 1234", "t=0 0",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=inactive", "a=mid:0",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=sendonly", "a=mid:1", "a=ssrc:42 cname:x",
		"m=audio 0 UDP/TLS/RTP/SAVPF 111", "a=inactive", "a=mid:2",
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=inactive", "a=mid:3", "",
	}, "\r\n")
	got, parked := parkInactive(offer)
	if len(parked) != 1 || !parked["0"] {
		t.Fatalf("parked %v, want only mid 0", parked)
	}
	want := strings.Replace(offer, "a=inactive\r\na=mid:0", "a=sendonly\r\na=mid:0", 1)
	if got != want {
		t.Errorf("offer rewritten as\n%q\nwant\n%q", got, want)
	}

	answer := strings.Join([]string{
		"v=0", "o=- 3 4 IN IP4 10.77.0.1", "s=-", "t=0 0",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=recvonly",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:1", "a=recvonly", "",
	}, "\r\n")
	wantAnswer := strings.Replace(answer, "a=mid:0\r\na=recvonly", "a=mid:0\r\na=inactive", 1)
	if got := answerParked(answer, parked); got != wantAnswer {
		t.Errorf("answer rewritten as\n%q\nwant\n%q", got, wantAnswer)
	}
	if got := answerParked(answer, nil); got != answer {
		t.Error("an answer with nothing parked was changed")
	}
}

package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	kit "github.com/earshot/earshot/internal/e2e"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

// udpPorts returns the local ports of this process's UDP sockets bound to
// ip (or to any address), from /proc.
func udpPorts(t testing.TB, ip string) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list own sockets: %v", err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	f, err := os.Open("/proc/self/net/udp")
	if err != nil {
		t.Fatalf("list own sockets: %v", err)
	}
	defer f.Close()
	want := net.ParseIP(ip).To4()
	out := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		addr, port, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(addr, 16, 32)
		p, err2 := strconv.ParseUint(port, 16, 16)
		if err1 != nil || err2 != nil {
			continue
		}
		// The kernel prints the address as a host-order (little-endian) word.
		local := net.IPv4(byte(a), byte(a>>8), byte(a>>16), byte(a>>24)).To4()
		if local.Equal(want) || local.Equal(net.IPv4zero.To4()) {
			out[int(p)] = true
		}
	}
	return out
}

// netnsIptables runs iptables inside the test bed's Janus namespace.
func netnsIptables(netns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", netns, "iptables"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// rtpMatch matches RTP packets with payload type 111 (the Opus payload
// type Janus offers): version 2 in the first byte, the payload type in the
// second (marker bit masked), read at the start of the UDP payload.
const rtpMatch = "0>>22&0x3C@8>>16&0xC07F=0x806F"

// lossRules are iptables rules in Janus's namespace that drop 5 % of the
// UDP packets Janus sends to the listener's ports, at random. RTP and
// everything else (RTCP, STUN, DTLS) have a rule each, so the RTP drops
// are counted on their own; rules without a target count what was sent.
type lossRules struct {
	netns, tag string
	rules      map[string][]string // by name: "rtp-sent", "rtp-drop", "other-sent", "other-drop"
}

func addLossRules(t testing.TB, netns, dst string, ports []int) *lossRules {
	t.Helper()
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	lr := &lossRules{netns: netns, tag: "earshot-e2e-" + kit.RandHex(4), rules: map[string][]string{}}
	base := []string{"OUTPUT", "-p", "udp", "-d", dst, "-m", "multiport", "--dports", strings.Join(ps, ",")}
	loss := []string{"-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"}
	rtp := []string{"-m", "u32", "--u32", rtpMatch}
	notRTP := []string{"-m", "u32", "!", "--u32", rtpMatch}
	for _, r := range []struct {
		name string
		spec []string
	}{
		{"rtp-sent", slices.Concat(base, rtp)},
		{"rtp-drop", slices.Concat(base, rtp, loss)},
		{"other-sent", slices.Concat(base, notRTP)},
		{"other-drop", slices.Concat(base, notRTP, loss)},
	} {
		spec := slices.Concat(r.spec, []string{"-m", "comment", "--comment", lr.tag + "-" + r.name})
		if _, err := netnsIptables(netns, append([]string{"-A"}, spec...)...); err != nil {
			t.Fatal(err)
		}
		lr.rules[r.name] = spec
	}
	t.Cleanup(lr.remove)
	return lr
}

func (lr *lossRules) remove() {
	for name, spec := range lr.rules {
		if _, err := netnsIptables(lr.netns, append([]string{"-D"}, spec...)...); err == nil {
			delete(lr.rules, name)
		}
	}
}

// counters reads each rule's packet counter.
func (lr *lossRules) counters(t testing.TB) map[string]int64 {
	t.Helper()
	out, err := netnsIptables(lr.netns, "-L", "OUTPUT", "-v", "-x", "-n")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		for name := range lr.rules {
			if strings.Contains(line, "/* "+lr.tag+"-"+name+" */") {
				n, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
				if err != nil {
					t.Fatalf("iptables counter in %q: %v", line, err)
				}
				got[name] = n
			}
		}
	}
	return got
}

// waitPublisher waits until the room lists display as a publisher.
func waitPublisher(t testing.TB, ep testbed.JanusEndpoint, room uint64, display string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := janus.New(janus.Config{URL: ep.URL, LocalAddr: ep.HostAddr, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	vr, err := janus.AttachVideoRoom(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the speaker publishes", time.Minute, func() bool {
		ps, err := vr.ListParticipants(ctx, janus.NumID(room))
		if err != nil {
			t.Fatalf("list participants: %v", err)
		}
		return slices.ContainsFunc(ps, func(p janus.Participant) bool { return p.Display == display && p.Publisher })
	})
}

// TestE2EPacketLoss drops 5 % of what Janus sends to the listener, at
// random (iptables statistic inside Janus's namespace; this kernel has no
// netem), while one speaker talks for about 20 s with tones: no segment
// may be missing, the tones stay within ±40 ms, and the loss the session
// manifest counts is the rule's drop count.
//
// The speaker publishes before the stage starts, so the only UDP socket
// the stage then opens on the veth is its subscription, and the rules
// match that port alone: the bot's own traffic and other tests' in room
// 1234 are left alone.
func TestE2EPacketLoss(t *testing.T) { packetLoss(t) }

// BenchmarkE2EPacketLoss runs TestE2EPacketLoss's scenario once, whatever
// b.N is, with the same checks. Its duration error and tone offset count
// towards the record_* figures (figures.sh keeps the worst of each), and
// it reports the packets the track counted lost against those the rule
// dropped.
func BenchmarkE2EPacketLoss(b *testing.B) {
	fig, lost, dropped := packetLoss(b)
	b.ReportMetric(float64(lost), "lost-packets")
	b.ReportMetric(float64(dropped), "dropped-packets")
	reportMediaFigures(b, fig)
}

// packetLoss is TestE2EPacketLoss's scenario; it returns the worst values
// it measured, the packets the manifest counts lost and those the rule
// dropped.
func packetLoss(t testing.TB) (_ figures, lost, dropped int64) {
	t.Helper()
	const room = 1236
	h := newE2E(t, e2eConfig{room: room, identity: "feed_id", segment: 5 * time.Second})
	if _, err := netnsIptables(h.janus.Netns, "-L", "OUTPUT", "-n"); err != nil {
		t.Fatalf("iptables in namespace %s (Debian package iptables): %v", h.janus.Netns, err)
	}
	tools := speechTools(t)
	clip := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{"l": speakerScript("en-us", 3, 4)})["l"]
	sp := &speaker{name: "l", display: "speaker-l-" + kit.RandHex(4), feed: randomFeedID(), clip: clip, leadIn: 10 * time.Second}

	sp.start(t, h.janus, room)
	waitPublisher(t, h.janus, room, sp.display)
	before := udpPorts(t, h.janus.HostAddr)
	h.start()
	h.waitJoined()
	var ports []int
	waitFor(t, "the stage's subscription opens a UDP port", time.Minute, func() bool {
		ports = ports[:0]
		for p := range udpPorts(t, h.janus.HostAddr) {
			if !before[p] {
				ports = append(ports, p)
			}
		}
		return len(ports) > 0
	})
	rules := addLossRules(t, h.janus.Netns, h.janus.HostAddr, ports)
	if len(sp.entries(t)) > 0 {
		t.Log("the speaker started before the loss rules were in place; the counts still compare from then on")
	}

	sp.wait(t, 3*time.Minute)
	h.waitTracksEnded()
	counts := rules.counters(t)
	rules.remove()
	h.stop(nil)
	rec := h.collect(tools)

	var fig figures
	tracks := speakerTracks(rec, h.pseud.Person(sp.identity("feed_id")))
	// A packet lost inside a tone takes it out for the 20 ms of the gap
	// and up to about 100 ms after (lossRecovery): toneCover leaves those
	// windows out, and the rest of each tone must be there.
	checkSpeaker(t, sp, sp.published(t), tracks, 0.9, &fig)
	if len(tracks) != 1 || tracks[0].ended == nil || tracks[0].man == nil {
		t.Fatalf("want one ended track in the session manifest, got %d", len(tracks))
	}
	lost = tracks[0].man.Packets.Lost // checkManifestTrack: track_ended says the same
	sent := counts["rtp-sent"]
	dropped = counts["rtp-drop"]
	t.Logf("RTP to the listener: %d sent by Janus, %d dropped by the rule (%.1f%%); other UDP (RTCP, STUN, DTLS): %d sent, %d dropped; the manifest counts %d lost, %d gap samples",
		sent, dropped, 100*float64(dropped)/math.Max(float64(sent), 1), counts["other-sent"], counts["other-drop"], lost, tracks[0].ended.GapSamples)
	if sent < int64(len(sp.bot.File().Packets))*9/10 {
		t.Errorf("the RTP rule saw %d packets, the speaker sent %d: does Janus use payload type 111?", sent, len(sp.bot.File().Packets))
	}
	if dropped == 0 {
		t.Fatal("the rule dropped nothing")
	}
	if diff := math.Abs(float64(lost - dropped)); diff > math.Max(10, 0.2*float64(dropped)) {
		t.Errorf("the manifest counts %d packets lost, the rule dropped %d", lost, dropped)
	}
	// The loss is on the media path: the recorder fills its gaps, and the
	// live chunks still cover the whole timeline.
	checkChunks(t, rec, noLiveFaults)
	checkSession(t, rec)
	t.Logf("record_duration_error_pct=%.3f", fig.durErrPct)
	t.Logf("record_tone_offset_ms=%.1f (relative to the first tone: %.1f; %d tones)", fig.toneAbsMS, fig.toneRelMS, fig.tones)
	t.Logf("loss: counted %d, dropped %d", lost, dropped)
	return fig, lost, dropped
}

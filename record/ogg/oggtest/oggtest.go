// Package oggtest checks Ogg/Opus streams with independent tools from the
// speech test bed (testbed/speech.sh): opusdec and opusinfo, both on
// libopusfile. Outside the test bed a test that needs them is skipped;
// under EARSHOT_TESTBED=1 their absence fails it.
package oggtest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/earshot/earshot/internal/testbed"
)

// Tool returns the path of a speech test-bed tool by its speech.env key
// (OPUSDEC, OPUSENC, SOX, ESPEAK_NG).
func Tool(t testing.TB, key string) string {
	t.Helper()
	env := testbed.Require(t, testbed.Speech)
	if env[key] == "" {
		testbed.Unavailable(t, "speech.env lacks "+key+": run testbed/speech.sh start")
	}
	return env[key]
}

// Decode decodes a stream with opusdec to 48 kHz mono samples, pre-skip
// and end trim applied, as a player outputs them. A stream opusdec
// rejects fails the test.
func Decode(t testing.TB, stream []byte) []int16 {
	t.Helper()
	opusdec := Tool(t, "OPUSDEC")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.opus"), filepath.Join(dir, "out.raw")
	if err := os.WriteFile(in, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(opusdec, "--quiet", "--rate", "48000", "--no-dither", in, out).CombinedOutput(); err != nil {
		t.Fatalf("opusdec rejected the stream: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// Opusinfo runs opusinfo on a stream, fails the test on an error or a
// warning (a granule position it doubts, a missing end of stream, …) and
// returns its report.
func Opusinfo(t testing.TB, stream []byte) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(Tool(t, "OPUSDEC")), "opusinfo")
	in := filepath.Join(t.TempDir(), "in.opus")
	if err := os.WriteFile(in, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, in).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) || bytes.Contains(out, []byte("ERROR")) {
		t.Fatalf("opusinfo: %v\n%s", err, out)
	}
	return string(out)
}

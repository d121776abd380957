//go:build !whisper

package whispercpp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/testbed"
)

// TestWhisperBuildInSidRoot is the CI check that the `whisper`-tagged build
// compiles, links and runs: testbed/whisper-sid.sh smoke makes (or reuses)
// the Debian sid root, builds the tagged binaries in it and runs this
// package's smoke test (TestSmoke, whisper tag) there.
func TestWhisperBuildInSidRoot(t *testing.T) {
	if !testbed.Enabled() {
		t.Skip("set EARSHOT_TESTBED=1 (make test does) to build the whisper-tagged binaries in a Debian sid root and smoke-test them: testbed/whisper-sid.sh smoke")
	}
	if os.Geteuid() != 0 {
		t.Fatal("testbed/whisper-sid.sh needs root (debootstrap, mount, chroot)")
	}
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	script := filepath.Join(testbed.RepoRoot(), "testbed", "whisper-sid.sh")
	cmd := exec.CommandContext(ctx, "bash", script, "smoke")
	// The script's children (the chroot'd test binary) go with it on
	// timeout: they share its process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s smoke: %v\n%s", script, err, out)
	}
	t.Logf("%s", out)
}

//go:build linux

package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// envRequireIntegration set to "1" (as CI does) fails the test instead
	// of skipping it when there is no Docker engine.
	envRequireIntegration = "SHOAL_REQUIRE_INTEGRATION"
	// scriptTimeout bounds the whole script; it takes about a minute with a
	// warm Go build cache.
	scriptTimeout = 5 * time.Minute
	// cleanupGrace is how long the script gets after SIGTERM to remove its
	// containers, network and images.
	cleanupGrace = time.Minute
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDockerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("dockertest: skipped in -short mode")
	}
	requireDocker(t)
	root := repoRoot(t)

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	if d, ok := t.Deadline(); ok && time.Until(d) < scriptTimeout+cleanupGrace {
		ctx, cancel = context.WithDeadline(ctx, d.Add(-cleanupGrace))
		defer cancel()
	}

	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "docker-test.sh"))
	cmd.Dir = root
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	// SIGTERM, not SIGKILL, on timeout: the script's trap removes what it
	// created. If the test binary dies, the kernel sends SIGTERM too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = cleanupGrace

	start := time.Now()
	err := cmd.Run()
	out.flush()
	if err != nil {
		t.Fatalf("hack/docker-test.sh after %s: %v", time.Since(start).Round(time.Second), err)
	}
	t.Logf("hack/docker-test.sh passed in %s", time.Since(start).Round(time.Second))
}

// requireDocker skips the test when no Docker engine answers, or fails it
// under SHOAL_REQUIRE_INTEGRATION=1.
func requireDocker(t *testing.T) {
	t.Helper()
	err := dockerInfo()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("dockertest: no Docker engine: %v", err)
	if os.Getenv(envRequireIntegration) == "1" {
		t.Fatal(msg + "; failing because " + envRequireIntegration + "=1")
	}
	t.Skip(msg)
}

func dockerInfo() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker info: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// repoRoot is the nearest directory above the working directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// lineLogger passes the script's output to t.Log line by line, so that
// `go test -v` shows progress. exec copies stdout and stderr from separate
// goroutines, hence the mutex.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
}

// flush logs a last line without a newline; call it after the command ended.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(string(l.buf))
		l.buf = nil
	}
}

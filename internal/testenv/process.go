package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long a component gets to exit after SIGTERM before
	// its process group is killed. Consul and Prometheus need well under a
	// second on loopback; the rest is headroom for a loaded CI machine.
	stopGrace = 10 * time.Second
	// logTailBytes is how much of a component's log is printed when a test
	// fails; the end of the log is where the interesting part is.
	logTailBytes = 32 << 10
	// pollInterval is how often readiness is checked while a component starts.
	pollInterval = 50 * time.Millisecond
	// startTimeout bounds how long a component may take to become ready.
	// Both need a few seconds at most; the margin is for 2-core CI machines
	// that are compiling at the same time.
	startTimeout = 60 * time.Second
)

// process is a component running as a child process in its own process group,
// with stdout and stderr appended to a log file. It can be stopped and started
// again with the same arguments. Its methods are safe for concurrent use.
type process struct {
	name    string
	bin     string
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
}

// newProcess describes a process and registers cleanups that stop it and,
// if the test failed, print the tail of its log. Call it after t.TempDir so
// that the process is gone before its directory is removed.
func newProcess(tb testing.TB, name, bin, logPath string, args ...string) *process {
	tb.Helper()
	p := &process{name: name, bin: bin, args: args, logPath: logPath}
	// Cleanups run last-in first-out: stop first, then print the full log.
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("testenv: %s log (%s), last %d KiB:\n%s", name, logPath, logTailBytes>>10, p.logTail())
		}
	})
	tb.Cleanup(func() {
		if err := p.stop(); err != nil {
			tb.Errorf("testenv: stop %s: %v", name, err)
		}
	})
	return p
}

// start runs the process. It returns once the process has been started, not
// once it is ready.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	// The child inherits its own copy of the descriptor, so exec needs no
	// copying goroutine and ours can be closed right after Start.
	defer func() { _ = logf.Close() }()
	fmt.Fprintf(logf, "=== testenv %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))

	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in the log; a killed process is expected
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// exited returns a channel that is closed when the running process exits, or
// nil when it is not running.
func (p *process) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// stop sends SIGTERM to the process group, waits up to stopGrace, then sends
// SIGKILL. It is a no-op when the process is not running.
func (p *process) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil

	pgid := cmd.Process.Pid // the child leads its own group, see sysProcAttr
	select {
	case <-done:
		return nil // exited on its own
	default:
	}
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send SIGTERM to process group %d: %w", pgid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopGrace):
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send SIGKILL to process group %d: %w", pgid, err)
	}
	<-done
	// Not a test failure: a loaded machine can be slow to shut down. Leave a
	// trace for whoever reads the log.
	p.appendLog(fmt.Sprintf("=== testenv: %s ignored SIGTERM for %v and was killed", p.name, stopGrace))
	return nil
}

func (p *process) appendLog(line string) {
	f, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	fmt.Fprintln(f, line)
}

// waitReady polls ready every pollInterval until it returns nil. It fails the
// test when the process exits first or timeout passes, quoting ready's last
// error.
func (p *process) waitReady(tb testing.TB, timeout time.Duration, ready func() error) {
	tb.Helper()
	exited := p.exited()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testenv: %s not ready after %v: %v", p.name, timeout, err)
		}
		select {
		case <-exited:
			tb.Fatalf("testenv: %s exited before it was ready (last check: %v)", p.name, err)
		case <-tick.C:
		}
	}
}

// logTail returns the end of the log file.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

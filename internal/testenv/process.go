package testenv

import (
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

// process is a component (Consul, the receiver) that is started again with
// the same arguments after a Stop.
type process struct {
	*Process
	args []string
}

// newProcess describes a process and registers cleanups that stop it and,
// if the test failed, print the tail of its log. Call it after t.TempDir so
// that the process is gone before its directory is removed.
func newProcess(tb testing.TB, name, bin, logPath string, args ...string) *process {
	tb.Helper()
	p := &process{Process: NewProcess(name, bin, logPath), args: args}
	// Cleanups run last-in first-out: stop first, then print the full log.
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("testenv: %s log (%s), last %d KiB:\n%s", name, logPath, logTailBytes>>10, p.LogTail())
		}
	})
	tb.Cleanup(func() {
		if err := p.stop(); err != nil {
			tb.Errorf("testenv: stop %s: %v", name, err)
		}
	})
	return p
}

// start runs the process with its arguments. It returns once the process has
// been started, not once it is ready.
func (p *process) start() error { return p.Start(p.args) }

// stop sends SIGTERM, waits up to stopGrace, then SIGKILL. A component that
// needs the SIGKILL is not a test failure (a loaded machine can be slow); the
// log says so.
func (p *process) stop() error {
	_, err := p.Stop(stopGrace)
	return err
}

// waitReady polls ready every pollInterval until it returns nil. It fails the
// test when the process exits first or timeout passes, quoting ready's last
// error.
func (p *process) waitReady(tb testing.TB, timeout time.Duration, ready func() error) {
	tb.Helper()
	exited := p.Exited()
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

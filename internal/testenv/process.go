package testenv

import (
	"context"
	"fmt"
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

// WaitReady polls ready every interval until it returns nil. It returns an
// error when the process exits first, ctx ends or timeout passes, quoting
// ready's last error.
func (p *Process) WaitReady(ctx context.Context, timeout, interval time.Duration, ready func(context.Context) error) error {
	exited := p.Exited()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (last check: %w)", p.name, err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w", p.name, timeout, err)
		case <-tick.C:
		}
	}
}

// StopGracefully stops the process (see Stop) with the components' grace
// period; a component that needs the SIGKILL is not an error (a loaded
// machine can be slow), the log says so.
func (p *Process) StopGracefully() error {
	_, err := p.Stop(stopGrace)
	return err
}

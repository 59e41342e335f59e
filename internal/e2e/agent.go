package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// readyTimeout bounds how long an agent may take to report ready. A
	// joiner whose peers do not answer retries for gossip's 10 s join
	// timeout first; the rest is headroom for a loaded 2-core machine.
	readyTimeout = 90 * time.Second
	// stopGrace is how long an agent gets to exit after SIGTERM: the handoff
	// timeout (15 s by default), a remote-write flush and leaving gossip,
	// with headroom.
	stopGrace = 60 * time.Second
	// requestTimeout bounds each request to an agent's HTTP API.
	requestTimeout = 5 * time.Second
	// pollInterval is how often readiness is checked.
	pollInterval = 100 * time.Millisecond
)

// nodeSeq numbers agents whose options name none.
var nodeSeq atomic.Int64

// AgentOptions configures StartAgent.
type AgentOptions struct {
	// Name is --cluster.node-name; "agent-<n>" if empty.
	Name string
	// Join are the --cluster.join values, usually peers' GossipAddr. They
	// are read at every Start, so they can be changed between Stop and Start.
	Join []string
	// Config is the Prometheus configuration file. It is rendered at every
	// Start, with AgentLabel set to Name unless NoAgentLabel.
	Config PromConfig
	// ConsulAddress is --consul.address, for ConsulRegister or consul+ joins.
	ConsulAddress string
	// ConsulRegister is --consul.register: the Consul service the agent
	// registers itself as. Empty: no registration.
	ConsulRegister string
	// HandoffTimeout is --cluster.handoff-timeout; shoal's default if zero.
	HandoffTimeout time.Duration
	// WebPort and GossipPort are the loopback ports; free ones if zero.
	WebPort, GossipPort int
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// NoAgentLabel leaves out the external label AgentLabel, so that every
	// agent writes a target's samples to the same series, as in production:
	// a receiver without an out-of-order window then rejects the
	// interleaved samples of two owners, and Collect reports every sample
	// with an empty Agent.
	NoAgentLabel bool
}

// Agent is a shoal process on loopback ports. Its address fields never
// change, so a restarted agent keeps its identity. Call its methods from the
// test goroutine, except the API methods (api.go), which are safe anywhere.
type Agent struct {
	// Name is the cluster node name.
	Name string
	// URL is the base URL of the web server, e.g. "http://127.0.0.1:41234".
	URL string
	// GossipAddr is the host:port of the gossip listener (TCP and UDP).
	GossipAddr string
	// DataDir is --storage.path, kept across restarts.
	DataDir string
	// ConfigPath is the Prometheus configuration file.
	ConfigPath string
	// LogPath is the file the agent logs to; it is printed when the test fails.
	LogPath string
	// Opts are the options the next Start uses.
	Opts AgentOptions

	tb        testing.TB
	proc      *testenv.Process
	client    *http.Client
	transport *http.Transport
}

// StartAgent starts a shoal agent and waits until /-/ready answers 200.
// t.Cleanup kills it if it still runs. It skips under -short.
func StartAgent(tb testing.TB, opts AgentOptions) *Agent {
	tb.Helper()
	a := NewAgent(tb, opts)
	a.Start()
	return a
}

// NewAgent prepares an agent, allocating its ports and directories, without
// starting it; StartCluster uses it to know every gossip address up front.
func NewAgent(tb testing.TB, opts AgentOptions) *Agent {
	tb.Helper()
	bin := Binary(tb)
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("agent-%d", nodeSeq.Add(1))
	}
	if opts.WebPort == 0 {
		opts.WebPort = testenv.FreePort(tb)
	}
	if opts.GossipPort == 0 {
		opts.GossipPort = testenv.FreePort(tb)
	}
	dir := tb.TempDir()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	a := &Agent{
		Name:       opts.Name,
		URL:        "http://" + loopback(opts.WebPort),
		GossipAddr: loopback(opts.GossipPort),
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "prometheus.yml"),
		LogPath:    filepath.Join(dir, "shoal.log"),
		Opts:       opts,
		tb:         tb,
		transport:  tr,
		client:     &http.Client{Transport: tr, Timeout: requestTimeout},
	}
	a.proc = testenv.NewProcess("shoal "+opts.Name, bin, a.LogPath)
	// Cleanups run last-in first-out: kill, then print the log, then close
	// idle connections.
	tb.Cleanup(tr.CloseIdleConnections)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("e2e: agent %s log (%s), tail:\n%s", a.Name, a.LogPath, a.proc.LogTail())
		}
	})
	tb.Cleanup(func() {
		// The test is over: nothing is measured any more, so SIGKILL.
		if err := a.proc.Kill(); err != nil {
			tb.Errorf("e2e: %v", err)
		}
	})
	return a
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// args renders the command line from Opts.
func (a *Agent) args() []string {
	o := a.Opts
	args := []string{
		"--config.file=" + a.ConfigPath,
		"--storage.path=" + a.DataDir,
		"--web.listen-address=" + loopback(o.WebPort),
		"--cluster.node-name=" + a.Name,
		"--cluster.listen-address=" + a.GossipAddr,
		"--log.level=info",
	}
	for _, j := range o.Join {
		args = append(args, "--cluster.join="+j)
	}
	if o.ConsulAddress != "" {
		args = append(args, "--consul.address="+o.ConsulAddress)
	}
	if o.ConsulRegister != "" {
		args = append(args, "--consul.register="+o.ConsulRegister)
	}
	if o.HandoffTimeout != 0 {
		args = append(args, "--cluster.handoff-timeout="+o.HandoffTimeout.String())
	}
	return append(args, o.ExtraArgs...)
}

// Start writes the configuration, starts the process and waits until it is
// ready. It fails the test if it is already running, exits or is not ready
// within a generous timeout.
func (a *Agent) Start() {
	a.tb.Helper()
	cfg := a.Opts.Config
	labels := map[string]string{}
	if !a.Opts.NoAgentLabel {
		labels[AgentLabel] = a.Name
	}
	for k, v := range cfg.ExternalLabels {
		labels[k] = v
	}
	cfg.ExternalLabels = labels
	if err := os.WriteFile(a.ConfigPath, []byte(cfg.Render()), 0o644); err != nil {
		a.tb.Fatalf("e2e: write config of %s: %v", a.Name, err)
	}
	if err := a.proc.Start(a.args()); err != nil {
		a.tb.Fatalf("e2e: %v", err)
	}
	a.WaitReady()
}

// WaitReady waits until /-/ready answers 200. It fails the test when the
// process exits first or readyTimeout passes.
func (a *Agent) WaitReady() {
	a.tb.Helper()
	exited := a.proc.Exited()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := a.ready(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			a.tb.Fatalf("e2e: agent %s not ready after %v: %v", a.Name, readyTimeout, err)
		}
		select {
		case <-exited:
			a.tb.Fatalf("e2e: agent %s exited before it was ready (last check: %v)", a.Name, err)
		case <-tick.C:
		}
	}
}

// Running reports whether the process was started and not yet stopped or
// killed by the harness.
func (a *Agent) Running() bool { return a.proc.Running() }

// Stop sends SIGTERM and waits for the agent to hand its targets over, flush
// and exit. It fails the test (without stopping it) when the agent needs
// SIGKILL after a generous grace period or exits with a non-zero status.
// Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.tb.Helper()
	if !a.proc.Running() {
		return
	}
	clean, err := a.proc.Stop(stopGrace)
	if err != nil {
		a.tb.Fatalf("e2e: stop %s: %v", a.Name, err)
	}
	if !clean {
		a.tb.Errorf("e2e: agent %s did not exit within %v of SIGTERM and was killed", a.Name, stopGrace)
		return
	}
	if st := a.proc.LastExit(); st != nil && st.ExitCode() != 0 {
		a.tb.Errorf("e2e: agent %s exited with %v after SIGTERM, want status 0", a.Name, st)
	}
	a.transport.CloseIdleConnections()
}

// Kill sends SIGKILL, as a crash would: the agent neither hands over its
// targets nor flushes remote write. Killing a stopped agent does nothing.
func (a *Agent) Kill() {
	a.tb.Helper()
	if err := a.proc.Kill(); err != nil {
		a.tb.Fatalf("e2e: kill %s: %v", a.Name, err)
	}
	a.transport.CloseIdleConnections()
}

// Restart stops the agent as Stop does and starts it again with the same
// name, ports and data directory, and the current Opts.
func (a *Agent) Restart() {
	a.tb.Helper()
	a.Stop()
	a.Start()
}

// ExitStatus returns the status of the last process Stop or Kill ended, or
// nil if none has ended.
func (a *Agent) ExitStatus() *os.ProcessState { return a.proc.LastExit() }

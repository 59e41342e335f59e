package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// The timing of the harness' agents, which shoal-bench's other subjects
// (a Prometheus agent, vmagent) share.
const (
	// ReadyTimeout bounds how long an agent may take to report ready. A
	// first agent whose peers do not answer waits for its bootstrap
	// timeout first, and a benchmarked agent discovers up to 10,000 Consul
	// targets; the rest is headroom for a loaded 2-core machine.
	ReadyTimeout = 2 * time.Minute
	// BootstrapTimeout is the --cluster.bootstrap-timeout of agents with
	// Bootstrap: the harness knows when nobody else runs yet.
	BootstrapTimeout = time.Second
	// StopGrace is how long an agent gets to exit after SIGTERM: the handoff
	// timeout (15 s by default), a remote-write flush and leaving gossip,
	// with headroom.
	StopGrace = 60 * time.Second
	// pollInterval is how often readiness is checked.
	pollInterval = 100 * time.Millisecond
)

// nodeSeq numbers agents whose options name none.
var nodeSeq atomic.Int64

// AgentOptions configures NewAgent.
type AgentOptions struct {
	// Name is --cluster.node-name; "agent-<n>" if empty.
	Name string
	// Bin is the shoal binary; Binary() if empty.
	Bin string
	// Join are the --cluster.join values, usually peers' GossipAddr. They
	// are read at every Start, so they can be changed between Stop and Start.
	Join []string
	// Bootstrap passes --cluster.bootstrap with a short
	// --cluster.bootstrap-timeout (BootstrapTimeout): the first agent of a
	// cluster whose Join lists nobody else yet (consul+ joins, or all the
	// fleet's addresses) starts a new cluster instead of waiting.
	Bootstrap bool
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
	// LogLevel is --log.level; "info" if empty.
	LogLevel string
	// WebPort and GossipPort are the ports; free ones if zero.
	WebPort, GossipPort int
	// Host is the IP address the web and gossip listeners bind to (and
	// gossip advertises); 127.0.0.1 if empty. An agent on an address other
	// than loopback refuses to gossip without a key unless ExtraArgs give
	// one (--cluster.secret-key-file) or --cluster.insecure.
	Host string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// NoAgentLabel leaves out the external label AgentLabel, so that every
	// agent writes a target's samples to the same series, as in production:
	// a receiver without an out-of-order window then rejects the
	// interleaved samples of two owners, and Collect reports every sample
	// with an empty Agent.
	NoAgentLabel bool
}

// Agent is a shoal process on its own ports: a testenv.Process with the
// agent's flags and configuration, and a Client for its HTTP API. Its
// address fields never change, so a restarted agent keeps its identity.
type Agent struct {
	*testenv.Process
	*Client

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
	// LogPath is the file the agent logs to.
	LogPath string
	// Opts are the options the next Start uses.
	Opts AgentOptions
}

// NewAgent prepares an agent, allocating its ports and directories, without
// starting it; StartCluster uses it to know every gossip address up front.
// Closing g kills it if it still runs.
func NewAgent(g *testenv.Group, opts AgentOptions) (*Agent, error) {
	var err error
	if opts.Bin == "" {
		if opts.Bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("agent-%d", nodeSeq.Add(1))
	}
	for _, p := range []*int{&opts.WebPort, &opts.GossipPort} {
		if *p == 0 {
			if *p, err = testenv.Port(); err != nil {
				return nil, err
			}
		}
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if net.ParseIP(opts.Host) == nil {
		return nil, fmt.Errorf("agent %s: host must be an IP address, got %q", opts.Name, opts.Host)
	}
	dir, err := g.Dir(opts.Name)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		Name:       opts.Name,
		URL:        "http://" + opts.hostPort(opts.WebPort),
		GossipAddr: opts.hostPort(opts.GossipPort),
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "prometheus.yml"),
		LogPath:    filepath.Join(dir, "shoal.log"),
		Opts:       opts,
	}
	a.Client = NewClient(a.Name, a.URL)
	g.OnClose(func() error { a.CloseIdleConnections(); return nil })
	// The group kills the process at Close: nothing is measured any more.
	a.Process = g.NewProcess("shoal "+opts.Name, opts.Bin, a.LogPath)
	return a, nil
}

// hostPort is host:port on the agent's Host.
func (o AgentOptions) hostPort(port int) string {
	return net.JoinHostPort(o.Host, strconv.Itoa(port))
}

// StartAgent prepares and starts an agent; see NewAgent and Start.
func StartAgent(ctx context.Context, g *testenv.Group, opts AgentOptions) (*Agent, error) {
	a, err := NewAgent(g, opts)
	if err != nil {
		return nil, err
	}
	return a, a.Start(ctx)
}

// args renders the command line from Opts.
func (a *Agent) args() []string {
	o := a.Opts
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	args := []string{
		"--config.file=" + a.ConfigPath,
		"--storage.path=" + a.DataDir,
		"--web.listen-address=" + o.hostPort(o.WebPort),
		"--cluster.node-name=" + a.Name,
		"--cluster.listen-address=" + a.GossipAddr,
		"--log.level=" + level,
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
	if o.Bootstrap {
		args = append(args, "--cluster.bootstrap", "--cluster.bootstrap-timeout="+BootstrapTimeout.String())
	}
	if o.HandoffTimeout != 0 {
		args = append(args, "--cluster.handoff-timeout="+o.HandoffTimeout.String())
	}
	return append(args, o.ExtraArgs...)
}

// Start writes the configuration, starts the process and waits until it is
// ready. It fails if the agent is already running, exits or is not ready
// within a generous timeout.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.Launch(); err != nil {
		return err
	}
	return a.WaitReady(ctx)
}

// Launch writes the configuration and starts the process without waiting
// for it to be ready: for agents that must not become ready.
func (a *Agent) Launch() error {
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
		return fmt.Errorf("write config of %s: %w", a.Name, err)
	}
	return a.Process.Start(a.args())
}

// WaitReady waits until /-/ready answers 200. It fails when the process
// exits first or ReadyTimeout passes.
func (a *Agent) WaitReady(ctx context.Context) error {
	return a.Process.WaitReady(ctx, ReadyTimeout, pollInterval, a.Ready)
}

// Stop sends SIGTERM and waits for the agent to hand its targets over, flush
// and exit. It fails when the agent needs SIGKILL after a generous grace
// period or exits with a non-zero status. Stopping a stopped agent does
// nothing.
func (a *Agent) Stop() error {
	if !a.Running() {
		return nil
	}
	defer a.CloseIdleConnections()
	clean, err := a.Process.Stop(StopGrace)
	if err != nil {
		return fmt.Errorf("stop %s: %w", a.Name, err)
	}
	if !clean {
		return fmt.Errorf("agent %s did not exit within %v of SIGTERM and was killed", a.Name, StopGrace)
	}
	if st := a.LastExit(); st != nil && st.ExitCode() != 0 {
		return fmt.Errorf("agent %s exited with %v after SIGTERM, want status 0", a.Name, st)
	}
	return nil
}

// Kill sends SIGKILL, as a crash would: the agent neither hands over its
// targets nor flushes remote write. Killing a stopped agent does nothing.
func (a *Agent) Kill() error {
	defer a.CloseIdleConnections()
	if err := a.Process.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", a.Name, err)
	}
	return nil
}

// Restart stops the agent as Stop does and starts it again with the same
// name, ports and data directory, and the current Opts.
func (a *Agent) Restart(ctx context.Context) error {
	if err := a.Stop(); err != nil {
		return err
	}
	return a.Start(ctx)
}

// ExitStatus returns the status of the last process Stop or Kill ended, or
// nil if none has ended.
func (a *Agent) ExitStatus() *os.ProcessState { return a.LastExit() }

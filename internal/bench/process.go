package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// A subject gets as long as an e2e agent to become ready and to stop
// (e2e.ReadyTimeout, e2e.StopGrace).
const (
	// requestTimeout bounds one request to a process' HTTP API.
	requestTimeout = 10 * time.Second
	// pollInterval is how often readiness and delivery are checked.
	pollInterval = 250 * time.Millisecond
)

// Remote-write byte counters: shoal and Prometheus count data and metadata
// apart, vmagent everything together. All count after compression.
var (
	promBytesMetrics    = []string{"prometheus_remote_storage_bytes_total", "prometheus_remote_storage_metadata_bytes_total"}
	vmagentBytesMetrics = []string{"vmagent_remotewrite_bytes_sent_total"}
)

// subject is what a run measures: the harness' process (a shoal agent's is
// its e2e.Agent's), where its HTTP server is and which of its counters
// count remote-write bytes.
type subject struct {
	*testenv.Process
	name string
	// url is the base URL of its HTTP server.
	url          string
	bytesMetrics []string
	// api reads a shoal agent's API; nil for the others.
	api *e2e.Client
	hc  *http.Client
	// start starts the process and waits until it is ready.
	start func(ctx context.Context) error
}

// newShoal prepares a shoal agent with its own cluster name.
func (b *Bench) newShoal(bin, name string, cfg testenv.PromConfig, pprofAddr string) (*subject, error) {
	a, err := e2e.NewAgent(b.g, shoalOptions(bin, name, cfg, pprofAddr))
	if err != nil {
		return nil, err
	}
	return agentSubject(a), nil
}

// newCandidate prepares the candidate agent: RunShoal's options with the
// candidate's binary and flags.
func (b *Bench) newCandidate(name string, cfg testenv.PromConfig) (*subject, error) {
	o := shoalOptions(b.cfg.CandidateBin, name, cfg, "")
	o.ExtraArgs = append(o.ExtraArgs, b.cfg.CandidateArgs...)
	a, err := e2e.NewAgent(b.g, o)
	if err != nil {
		return nil, err
	}
	return agentSubject(a), nil
}

// shoalOptions are a benchmarked agent's options: its own cluster, quiet
// logs, the run's external label only and, for a binary built with the
// pprof overlay, where it serves /debug/pprof.
func shoalOptions(bin, name string, cfg testenv.PromConfig, pprofAddr string) e2e.AgentOptions {
	o := e2e.AgentOptions{
		Name: name, Bin: bin, Config: cfg, LogLevel: "warn", NoAgentLabel: true,
		ExtraArgs: []string{"--cluster.name=bench-" + name},
	}
	if pprofAddr != "" {
		o.ExtraArgs = append(o.ExtraArgs, pprofFlag+"="+pprofAddr)
	}
	return o
}

func agentSubject(a *e2e.Agent) *subject {
	return &subject{
		Process: a.Process, name: a.Name, url: a.URL, bytesMetrics: promBytesMetrics, api: a.Client,
		hc: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: requestTimeout}, start: a.Start,
	}
}

// newExternal prepares a Prometheus agent or a vmagent: args get the
// listen address appended by listenArg, and readiness is readyPath.
func (b *Bench) newExternal(name, bin string, cfg testenv.PromConfig, readyPath string, bytesMetrics []string, args func(dir, cfgPath, listen string) []string) (*subject, error) {
	dir, err := b.g.Dir(name)
	if err != nil {
		return nil, err
	}
	port, err := testenv.Port()
	if err != nil {
		return nil, err
	}
	listen := testenv.Loopback(port)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.Render()), 0o644); err != nil {
		return nil, err
	}
	p := &subject{
		Process: b.g.NewProcess(name, bin, filepath.Join(dir, "log")),
		name:    name, url: "http://" + listen, bytesMetrics: bytesMetrics,
		hc: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: requestTimeout},
	}
	argv := args(dir, cfgPath, listen)
	p.start = func(ctx context.Context) error {
		if err := p.Start(argv); err != nil {
			return err
		}
		return p.WaitReady(ctx, e2e.ReadyTimeout, pollInterval, func(ctx context.Context) error {
			return testenv.HTTPReady(ctx, p.hc, p.url+readyPath)
		})
	}
	return p, nil
}

// newPrometheusAgent prepares `prometheus --agent`.
func (b *Bench) newPrometheusAgent(name string, cfg testenv.PromConfig) (*subject, error) {
	return b.newExternal(name, b.cfg.PrometheusBin, cfg, "/-/ready", promBytesMetrics, func(dir, cfgPath, listen string) []string {
		return []string{
			"--agent",
			"--config.file=" + cfgPath,
			"--storage.agent.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + listen,
			"--log.level=warn",
		}
	})
}

// newVMAgent prepares vmagent. Its file has no remote_write and no
// external labels: it takes both as flags.
func (b *Bench) newVMAgent(name string, cfg testenv.PromConfig) (*subject, error) {
	labels, rw := cfg.ExternalLabels, cfg.RemoteWriteURL
	cfg.ExternalLabels, cfg.RemoteWriteURL = nil, ""
	return b.newExternal(name, b.cfg.VMAgentBin, cfg, "/health", vmagentBytesMetrics, func(dir, cfgPath, listen string) []string {
		args := []string{
			"-promscrape.config=" + cfgPath,
			"-remoteWrite.url=" + rw,
			"-remoteWrite.tmpDataPath=" + filepath.Join(dir, "data"),
			"-httpListenAddr=" + listen,
			"-loggerLevel=WARN",
			// vmagent's Consul SD has no refresh_interval; its flag sets it.
			"-promscrape.config.strictParse=false",
			"-promscrape.consulSDCheckInterval=" + cfg.SDRefresh.String(),
		}
		for k, v := range labels {
			args = append(args, "-remoteWrite.label="+k+"="+v)
		}
		return args
	})
}

// metrics sums the named metrics of the process' /metrics.
func (p *subject) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	cs := make([]testenv.Counter, len(names))
	for i, n := range names {
		cs[i] = testenv.Counter{Name: n}
	}
	vals, err := testenv.FetchCounters(ctx, p.hc, p.url+"/metrics", cs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(vals))
	for c, v := range vals {
		out[c.Name] = v
	}
	return out, nil
}

// bytesSent reads the remote-write byte counters.
func (p *subject) bytesSent(ctx context.Context) (float64, error) {
	m, err := p.metrics(ctx, p.bytesMetrics...)
	if err != nil {
		return 0, err
	}
	if _, ok := m[p.bytesMetrics[0]]; !ok {
		return 0, fmt.Errorf("%s: no %s in /metrics", p.name, p.bytesMetrics[0])
	}
	sum := 0.0
	for _, v := range m {
		sum += v
	}
	return sum, nil
}

// stop sends SIGTERM and waits, then SIGKILL; a process that needed the
// SIGKILL is logged, not an error: nothing is measured any more.
func (p *subject) stop() error {
	defer p.hc.CloseIdleConnections()
	clean, err := p.Stop(e2e.StopGrace)
	if err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	if !clean {
		p.AppendLog("=== bench: killed after " + e2e.StopGrace.String())
	}
	return nil
}

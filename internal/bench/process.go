package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// readyTimeout bounds how long a process may take to answer its
	// readiness endpoint; seconds on an idle machine, the rest is headroom.
	readyTimeout = 2 * time.Minute
	// stopGrace is how long a process gets after SIGTERM before SIGKILL: a
	// shoal agent hands its targets over (15 s at most) and flushes.
	stopGrace = 30 * time.Second
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

// process is one process under test: a shoal agent, a Prometheus agent or
// a vmagent, on loopback ports, in its own directory.
type process struct {
	name string
	// url is the base URL of its HTTP server.
	url string
	// gossip is a shoal agent's gossip address.
	gossip string
	// readyPath answers 200 once the process is ready.
	readyPath    string
	bytesMetrics []string
	dir          string
	logPath      string
	args         []string
	proc         *testenv.Process
	hc           *http.Client
}

// newProcess prepares a process: a directory and a web port.
func (b *Bench) newProcess(name, bin string) (*process, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := b.freePort()
	if err != nil {
		return nil, err
	}
	p := &process{
		name:    name,
		url:     "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:     dir,
		logPath: filepath.Join(dir, "log"),
		hc:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: requestTimeout},
	}
	p.proc = testenv.NewProcess(name, bin, p.logPath)
	return p, nil
}

func (p *process) writeConfig(cfg ScrapeConfig) (string, error) {
	path := filepath.Join(p.dir, "prometheus.yml")
	return path, os.WriteFile(path, []byte(cfg.Render()), 0o644)
}

// shoalOptions are the flags that differ between shoal agents.
type shoalOptions struct {
	cluster string
	join    []string
	// pprofAddr, for a binary built with the pprof overlay, is where it
	// serves /debug/pprof.
	pprofAddr string
}

// newShoal prepares a shoal agent with its own cluster name.
func (b *Bench) newShoal(bin, name string, cfg ScrapeConfig, o shoalOptions) (*process, error) {
	p, err := b.newProcess(name, bin)
	if err != nil {
		return nil, err
	}
	gport, err := b.freePort()
	if err != nil {
		return nil, err
	}
	p.gossip = net.JoinHostPort("127.0.0.1", strconv.Itoa(gport))
	path, err := p.writeConfig(cfg)
	if err != nil {
		return nil, err
	}
	p.readyPath, p.bytesMetrics = "/-/ready", promBytesMetrics
	p.args = []string{
		"--config.file=" + path,
		"--storage.path=" + filepath.Join(p.dir, "data"),
		"--web.listen-address=" + p.url[len("http://"):],
		"--cluster.name=" + o.cluster,
		"--cluster.node-name=" + name,
		"--cluster.listen-address=" + p.gossip,
		"--log.level=warn",
	}
	for _, j := range o.join {
		p.args = append(p.args, "--cluster.join="+j)
	}
	if o.pprofAddr != "" {
		p.args = append(p.args, pprofFlag+"="+o.pprofAddr)
	}
	return p, nil
}

// newPrometheusAgent prepares `prometheus --agent`.
func (b *Bench) newPrometheusAgent(name string, cfg ScrapeConfig) (*process, error) {
	p, err := b.newProcess(name, b.cfg.PrometheusBin)
	if err != nil {
		return nil, err
	}
	path, err := p.writeConfig(cfg)
	if err != nil {
		return nil, err
	}
	p.readyPath, p.bytesMetrics = "/-/ready", promBytesMetrics
	p.args = []string{
		"--agent",
		"--config.file=" + path,
		"--storage.agent.path=" + filepath.Join(p.dir, "data"),
		"--web.listen-address=" + p.url[len("http://"):],
		"--log.level=warn",
	}
	return p, nil
}

// newVMAgent prepares vmagent. Its file has no remote_write and no
// external labels: it takes both as flags.
func (b *Bench) newVMAgent(name string, cfg ScrapeConfig) (*process, error) {
	p, err := b.newProcess(name, b.cfg.VMAgentBin)
	if err != nil {
		return nil, err
	}
	labels := cfg.ExternalLabels
	cfg.ExternalLabels, cfg.RemoteWriteURL = nil, ""
	path, err := p.writeConfig(cfg)
	if err != nil {
		return nil, err
	}
	p.readyPath, p.bytesMetrics = "/health", vmagentBytesMetrics
	p.args = []string{
		"-promscrape.config=" + path,
		"-remoteWrite.url=" + b.rcv.RemoteWriteURL,
		"-remoteWrite.tmpDataPath=" + filepath.Join(p.dir, "data"),
		"-httpListenAddr=" + p.url[len("http://"):],
		"-loggerLevel=WARN",
	}
	for k, v := range labels {
		p.args = append(p.args, "-remoteWrite.label="+k+"="+v)
	}
	return p, nil
}

// start starts the process and waits until its readiness endpoint answers.
func (p *process) start(ctx context.Context) error {
	if err := p.proc.Start(p.args); err != nil {
		return err
	}
	return p.waitReady(ctx)
}

// waitReady polls the readiness endpoint until it answers 200.
func (p *process) waitReady(ctx context.Context) error {
	exited := p.proc.Exited()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		if last = p.get(ctx, p.readyPath, nil); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (last check: %w); log tail:\n%s", p.name, last, p.proc.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %w)", p.name, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// get GETs path and decodes a JSON answer into out, unless out is nil.
func (p *process) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// getAPI GETs a JSON API path of shoal or Prometheus and decodes the data
// of its {"status": "success", "data": ...} envelope into out.
func (p *process) getAPI(ctx context.Context, path string, out any) error {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := p.get(ctx, path, &env); err != nil {
		return err
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: status %q: %s", path, env.Status, env.Error)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", path, err)
	}
	return nil
}

// metrics sums the named metrics of the process' /metrics.
func (p *process) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
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
func (p *process) bytesSent(ctx context.Context) (float64, error) {
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
func (p *process) stop() error {
	defer p.hc.CloseIdleConnections()
	clean, err := p.proc.Stop(stopGrace)
	if err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	if !clean {
		p.proc.AppendLog("=== bench: killed after " + stopGrace.String())
	}
	return nil
}

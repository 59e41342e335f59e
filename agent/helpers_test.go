package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Bounds of the waits in these tests: generous, since -race and a loaded CI
// machine slow gossip and discovery down.
const (
	startTimeout    = 30 * time.Second
	convergeTimeout = 30 * time.Second
	pollInterval    = 50 * time.Millisecond
)

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }

// testAgent is an agent running in-process on loopback ports.
type testAgent struct {
	*Agent
	t      testing.TB
	name   string
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	// stopped is when Run returned (unix nanoseconds).
	stopped atomic.Int64
	http    *http.Client
}

// agentOptions are the defaults of startAgent: loopback ports, no rejoin
// ticker, short handoff and flush bounds.
func agentOptions(t testing.TB, name, configFile string) Options {
	o := DefaultOptions(name)
	o.ConfigFile = configFile
	o.Storage.Path = t.TempDir()
	o.Storage.FlushDeadline = 2 * time.Second
	// A fixed port: it is advertised to peers (gossip metadata) and Consul
	// before the listener opens.
	o.Web.ListenAddress = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	o.Gossip.ClusterName = "shoal-test"
	o.Gossip.BindAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	o.Gossip.RejoinInterval = 0
	o.Gossip.HandoffLead = 0
	o.Stop.HandoffTimeout = 10 * time.Second
	o.Version = "test"
	return o
}

// newTestAgent builds an agent without running it.
func newTestAgent(t testing.TB, opts Options) *testAgent {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", opts.Gossip.Name)
	a, err := New(opts, logger, prometheus.NewRegistry())
	require.NoError(t, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	ta := &testAgent{Agent: a, t: t, name: opts.Gossip.Name, logs: logs, http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if t.Failed() {
			t.Logf("log of %s:\n%s", ta.name, logs.String())
		}
	})
	return ta
}

// startAgent builds and runs an agent; t.Cleanup stops it.
func startAgent(t testing.TB, opts Options) *testAgent {
	t.Helper()
	ta := newTestAgent(t, opts)
	ta.run()
	return ta
}

func (ta *testAgent) run() {
	ta.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel, ta.done = cancel, make(chan struct{})
	go func() {
		defer close(ta.done)
		ta.err = ta.Run(ctx)
		ta.stopped.Store(time.Now().UnixNano())
	}()
	ta.t.Cleanup(func() { ta.stop() })
	require.Eventually(ta.t, func() bool { return ta.WebAddr() != "" }, startTimeout, 10*time.Millisecond, "web server of %s did not start", ta.name)
}

// stop cancels Run and waits for it; it returns Run's error.
func (ta *testAgent) stop() error {
	ta.t.Helper()
	ta.cancel()
	select {
	case <-ta.done:
	case <-time.After(60 * time.Second):
		ta.t.Fatalf("agent %s did not stop within 60s", ta.name)
	}
	return ta.err
}

func (ta *testAgent) url(path string) string { return "http://" + ta.WebAddr() + path }

// get returns the status and body of a GET; a failed request is status 0.
func (ta *testAgent) get(path string) (int, string) {
	resp, err := ta.http.Get(ta.url(path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ta *testAgent) post(path string) (int, string) {
	resp, err := ta.http.Post(ta.url(path), "", nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// getJSON decodes the data of a successful API answer into v.
func (ta *testAgent) getJSON(path string, v any) error {
	code, body := ta.get(path)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: status %q", path, env.Status)
	}
	return json.Unmarshal(env.Data, v)
}

// metric returns the value of an unlabelled sample in /metrics, or -1.
func (ta *testAgent) metric(name string) float64 {
	_, body := ta.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		var v float64
		if strings.HasPrefix(line, name+" ") {
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v); err == nil {
				return v
			}
		}
	}
	return -1
}

func (ta *testAgent) waitReady() {
	ta.t.Helper()
	require.Eventually(ta.t, func() bool {
		code, _ := ta.get("/-/ready")
		return code == http.StatusOK
	}, startTimeout, pollInterval, "%s did not become ready", ta.name)
}

// clusterTargets is /api/v1/cluster/targets.
func (ta *testAgent) clusterTargets() (ClusterTargets, error) {
	var ct ClusterTargets
	err := ta.getJSON("/api/v1/cluster/targets", &ct)
	return ct, err
}

// startFarm starts n synthetic targets; t.Cleanup stops them.
func startFarm(t testing.TB, n int) *farm.Farm {
	t.Helper()
	f, err := farm.Start(context.Background(), farm.Config{Targets: n})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// staticConfig is a config file with one static job per name, scraping the
// given addresses every second.
func staticConfig(jobs map[string][]string) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n")
	for job, addrs := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [", job)
		for i, a := range addrs {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", a)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func farmAddrs(f *farm.Farm) []string {
	var out []string
	for _, t := range f.Targets() {
		out = append(out, t.Addr)
	}
	return out
}

func writeConfig(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal.yml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// rewrite replaces a config file's content for a reload.
func rewrite(t testing.TB, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

package ops

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// The live test's setup.
const (
	liveCluster = "ops"
	liveAgents  = 3
	liveTargets = 12
	// liveInterval is the monitor's scrape and rule evaluation interval.
	liveInterval = time.Second
	// liveFor replaces the `for:` of the alerts the faults fire, so that
	// they fire within seconds instead of minutes.
	liveFor = 3 * time.Second
	// alertTimeout bounds how long the alerts may take to fire or resolve:
	// the lag thresholds (10 s in the test copy), failure detection (3-4 s),
	// liveFor, and headroom for a loaded 2-core machine.
	alertTimeout = 90 * time.Second
	// rateInterval is what the test substitutes for Grafana's
	// $__rate_interval: four monitor scrape intervals and more.
	rateInterval = "15s"
)

// liveOverrides shorten the alerts the live test makes fire; every other
// alert keeps its production `for:`, so that one firing is a fault of its
// own and fails the test.
var liveOverrides = map[string]Override{
	"ShoalAgentDown":                {For: liveFor},
	"ShoalClusterSizeBelowExpected": {For: liveFor},
	"ShoalRemoteWriteFailing":       {For: liveFor, Replace: [][2]string{{"> 60)", "> 10)"}}},
	"ShoalRemoteWriteBehind":        {For: liveFor, Replace: [][2]string{{"> 120)", "> 10)"}}},
}

// TestLive runs a Prometheus server ("the monitor") loaded with a test copy
// of the alert rules that scrapes three agents; the agents remote-write to
// the receiver and to the monitor (so that it holds the up and scrape_*
// series the dashboard reads). SIGKILLing one agent and stopping the
// receiver must fire exactly the expected alerts, which must resolve after
// recovery; then every dashboard query must return data from the monitor.
func TestLive(t *testing.T) {
	testenv.SkipWithout(t, testenv.ConsulBinary, testenv.PrometheusBinary)
	ctx := t.Context()
	g := testenv.ForTest(t)
	rgs := loadAlerts(t)
	env, err := e2e.StartEnv(ctx, g, e2e.EnvOptions{Targets: liveTargets})
	require.NoError(t, err)

	ports, err := testenv.FreePorts(liveAgents + 1)
	require.NoError(t, err)
	monitorPort, webPorts := ports[0], ports[1:]
	var agentAddrs []string
	for _, p := range webPorts {
		agentAddrs = append(agentAddrs, testenv.Loopback(p))
	}
	rulesPath := filepath.Join(t.TempDir(), "alerts.yml")
	require.NoError(t, WriteTestCopy(rgs, liveOverrides, rulesPath))
	monitor, err := testenv.RunReceiver(ctx, g, testenv.ReceiverOptions{
		Port:   monitorPort,
		Config: testenv.PromConfig{Raw: monitorConfig(rulesPath, agentAddrs)},
	})
	require.NoError(t, err)
	rules, err := monitor.API().Rules(ctx, nil)
	require.NoError(t, err)
	loaded := 0
	for _, grp := range rules.Groups {
		loaded += len(grp.Rules)
	}
	require.Equal(t, len(Alerts(rgs)), loaded, "the monitor loaded %d rules", loaded)

	agents, err := env.StartCluster(ctx, liveAgents, "ops", func(i int, o *e2e.AgentOptions) {
		o.WebPort = webPorts[i]
		o.ConsulAddress = env.Consul.Addr
		o.ConsulRegister = "shoal"
		o.Config = testenv.PromConfig{Raw: agentConfig(env, o.Name, monitor.RemoteWriteURL)}
		// The survivors hold the killed agent's targets' first samples for
		// it, up to the handoff wait (30 s by default, under the production
		// lag thresholds); scaled down like those thresholds here.
		o.ExtraArgs = append(o.ExtraArgs, "--storage.remote.handoff-wait=3s")
	})
	require.NoError(t, err)
	_, err = e2e.WaitConverged(ctx, agents, env.Instances(true))
	require.NoError(t, err)
	inst := func(i int) string { return agentAddrs[i] }

	w := &alertWatch{api: monitor.API(), seen: map[string]bool{}}
	start := time.Now()
	// Healthy: the monitor scrapes every agent, every agent has delivered
	// to both endpoints, and nothing fires.
	require.NoError(t, e2e.Poll(ctx, alertTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		for q, want := range map[string]float64{
			`count(up{job="shoal"} == 1)`:                                     liveAgents,
			`count(prometheus_remote_storage_samples_total{job="shoal"} > 0)`: 2 * liveAgents,
		} {
			s, err := monitor.Query(ctx, q, time.Now())
			if err != nil {
				return err
			}
			if len(s) != 1 || s[0].V != want {
				return fmt.Errorf("%s is %v, want %v", q, s, want)
			}
		}
		return w.expect(ctx, nil)
	}), "healthy fleet")
	t.Logf("healthy fleet, no alert: %v", time.Since(start).Round(time.Millisecond))

	// A crash and a receiver outage at once.
	start = time.Now()
	require.NoError(t, agents[2].Kill())
	require.NoError(t, env.StopReceiver())
	fault := []string{
		key("ShoalAgentDown", "instance", inst(2)),
		key("ShoalClusterSizeBelowExpected", "cluster", liveCluster),
		key("ShoalRemoteWriteBehind", "instance", inst(0), "remote_name", "receiver"),
		key("ShoalRemoteWriteBehind", "instance", inst(1), "remote_name", "receiver"),
		key("ShoalRemoteWriteFailing", "instance", inst(0), "remote_name", "receiver"),
		key("ShoalRemoteWriteFailing", "instance", inst(1), "remote_name", "receiver"),
	}
	require.NoError(t, e2e.Poll(ctx, alertTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		return w.expect(ctx, fault)
	}), "alerts of the fault")
	t.Logf("agent killed and receiver stopped: %d alerts fired after %v", len(fault), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	require.NoError(t, env.StartReceiver())
	require.NoError(t, agents[2].Start(ctx))
	require.NoError(t, e2e.Poll(ctx, alertTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		return w.expect(ctx, nil)
	}), "recovery")
	t.Logf("receiver and agent back: every alert resolved after %v", time.Since(start).Round(time.Millisecond))
	require.ElementsMatch(t, fault, slices.Collect(maps.Keys(w.seen)), "alerts that fired at some point")

	exported := exportedMetrics(t, agents)
	t.Run("rules read exported metrics", func(t *testing.T) {
		for _, r := range Alerts(rgs) {
			names, err := MetricNames(r.Expr)
			require.NoError(t, err)
			for _, n := range names {
				require.True(t, exported[n], "%s reads %s, which shoal does not export", r.Alert, n)
			}
		}
	})
	t.Run("dashboard", func(t *testing.T) {
		checkDashboard(t, monitor, exported, agentAddrs)
	})
}

// monitorConfig is the monitor's configuration: it scrapes the agents every
// liveInterval as job "shoal" with the cluster label, and evaluates the
// rules as often.
func monitorConfig(rulesPath string, agents []string) string {
	quoted := make([]string, len(agents))
	for i, a := range agents {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	iv := testenv.PromDuration(liveInterval)
	return fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
rule_files: [%q]
scrape_configs:
  - job_name: shoal
    static_configs:
      - targets: [%s]
        labels:
          cluster: %q
`, iv, iv, iv, rulesPath, strings.Join(quoted, ", "), liveCluster)
}

// agentConfig is an agent's configuration: the environment's job, the
// cluster external label, and remote write to the receiver and to the
// monitor, each named.
func agentConfig(env *e2e.Env, name, monitorURL string) string {
	c := env.PromConfig()
	c.RemoteWriteURL = ""
	c.ExternalLabels = map[string]string{e2e.AgentLabel: name, "cluster": liveCluster}
	var b strings.Builder
	b.WriteString(c.Render())
	b.WriteString("remote_write:\n")
	for _, ep := range [][2]string{{"receiver", env.Receiver.RemoteWriteURL}, {"monitor", monitorURL}} {
		// max_backoff 1s: a receiver that returns is retried within a
		// second (the default, 5 s, delays every catch-up by up to that).
		fmt.Fprintf(&b, "  - name: %s\n    url: %q\n    queue_config:\n      batch_send_deadline: %s\n      max_backoff: 1s\n", ep[0], ep[1], testenv.PromDuration(testenv.DefaultBatchSendDeadline))
	}
	return b.String()
}

// key identifies an alert by its name and the labels that tell its
// instances apart.
func key(name string, kv ...string) string {
	parts := []string{name}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+kv[i+1])
	}
	return strings.Join(parts, " ")
}

// keyLabels are the labels key uses, in order.
var keyLabels = []string{"cluster", "instance", "remote_name"}

// alertWatch reads the monitor's firing alerts and remembers every one it
// has seen firing.
type alertWatch struct {
	api  v1.API
	seen map[string]bool
}

// expect returns nil when exactly the alerts want are firing.
func (w *alertWatch) expect(ctx context.Context, want []string) error {
	res, err := w.api.Alerts(ctx)
	if err != nil {
		return err
	}
	var firing []string
	for _, a := range res.Alerts {
		if a.State != v1.AlertStateFiring {
			continue
		}
		kv := []string{}
		for _, l := range keyLabels {
			// Fleet-wide alerts carry only the cluster; the others also
			// carry it, from the target: leave it out of those keys.
			if v, ok := a.Labels[model.LabelName(l)]; ok && (l != "cluster" || a.Labels["instance"] == "") {
				kv = append(kv, l, string(v))
			}
		}
		k := key(string(a.Labels["alertname"]), kv...)
		firing = append(firing, k)
		w.seen[k] = true
	}
	slices.Sort(firing)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(firing, want) {
		return fmt.Errorf("firing %q, want %q", firing, want)
	}
	return nil
}

// exportedMetrics returns the metric names shoal exports: declared in its
// source, served by the agents' /metrics now, and the scrape series.
func exportedMetrics(t *testing.T, agents []*e2e.Agent) map[string]bool {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	out, err := DeclaredMetrics(root)
	require.NoError(t, err)
	for _, n := range ScrapeSeries {
		out[n] = true
	}
	for _, a := range agents {
		names, err := servedMetrics(t.Context(), a.URL+"/metrics")
		require.NoError(t, err)
		for _, n := range names {
			out[n] = true
		}
	}
	return out
}

var sampleNameRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)

// servedMetrics returns the names of the samples a /metrics page serves
// (histograms as their _bucket, _sum and _count).
func servedMetrics(ctx context.Context, url string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Close = true // no idle connection outlives the test (goleak)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	var names []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m := sampleNameRE.FindStringSubmatch(sc.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	return names, sc.Err()
}

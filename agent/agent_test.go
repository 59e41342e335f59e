package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
)

func TestReload(t *testing.T) {
	t.Parallel()
	f := startFarm(t, 3)
	addrs := farmAddrs(f)
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"a": addrs[:1]}))
	opts := agentOptions(t, "reload", cfgPath)
	opts.Web.EnableLifecycle = true
	a := startAgent(t, opts)
	a.waitReady()

	jobs := func() map[string]int {
		ct, err := a.clusterTargets()
		if err != nil {
			return nil
		}
		return ct.Jobs
	}
	require.Equal(t, map[string]int{"a": 1}, jobs())
	require.Equal(t, 1.0, a.metric("shoal_config_last_reload_successful"))

	// A good file applies: the new job's targets are discovered.
	rewrite(t, cfgPath, staticConfig(map[string][]string{"a": addrs[:1], "b": addrs[1:]}))
	code, body := a.post("/-/reload")
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { return jobs()["b"] == 2 }, convergeTimeout, pollInterval)
	require.Equal(t, 1.0, a.metric("shoal_config_last_reload_successful"))

	// A bad file keeps the running config and sets the gauge to 0.
	rewrite(t, cfgPath, "scrape_configs:\n  - job_name: c\n    scrape_intervall: 1s\n")
	code, body = a.post("/-/reload")
	require.Equal(t, http.StatusInternalServerError, code, body)
	require.Contains(t, body, "scrape_intervall")
	require.Equal(t, 0.0, a.metric("shoal_config_last_reload_successful"))
	require.Equal(t, map[string]int{"a": 1, "b": 2}, jobs())
	require.Error(t, a.Reload(), "SIGHUP path")
	require.Equal(t, 0.0, a.metric("shoal_config_last_reload_successful"))
	a.waitReady()

	// A good file again: the gauge is back to 1 and job a is gone.
	rewrite(t, cfgPath, staticConfig(map[string][]string{"b": addrs[1:]}))
	require.NoError(t, a.Reload())
	require.Equal(t, 1.0, a.metric("shoal_config_last_reload_successful"))
	require.Eventually(t, func() bool {
		j := jobs()
		return j != nil && j["a"] == 0 && j["b"] == 2
	}, convergeTimeout, pollInterval)
	require.Eventually(t, func() bool {
		var tg Targets
		if err := a.getJSON("/api/v1/targets", &tg); err != nil {
			return false
		}
		return len(tg.ActiveTargets) == 2 && tg.ActiveTargets[0].ScrapePool == "b"
	}, convergeTimeout, pollInterval)

	requireQuitStops(t, a)
}

// requireQuitStops checks that POST /-/quit stops Run cleanly.
func requireQuitStops(t *testing.T, a *testAgent) {
	t.Helper()
	code, body := a.post("/-/quit")
	require.Equal(t, http.StatusOK, code, body)
	select {
	case <-a.done:
		require.NoError(t, a.err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after /-/quit")
	}
}

func TestLifecycleDisabled(t *testing.T) {
	t.Parallel()
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"a": {"127.0.0.1:1"}}))
	a := startAgent(t, agentOptions(t, "no-lifecycle", cfgPath))
	for _, path := range []string{"/-/reload", "/-/quit"} {
		code, body := a.post(path)
		require.Equal(t, http.StatusForbidden, code, path)
		require.Contains(t, body, "--web.enable-lifecycle")
	}
	a.waitReady()
	code, _ := a.get("/-/healthy")
	require.Equal(t, http.StatusOK, code)
}

func TestReadinessWithoutScrapeConfigs(t *testing.T) {
	t.Parallel()
	// Prometheus' discovery manager never sends a snapshot without
	// providers: readiness must not wait for one.
	cfgPath := writeConfig(t, "global:\n  scrape_interval: 1s\n")
	a := startAgent(t, agentOptions(t, "idle", cfgPath))
	a.waitReady()
	// Adding a job by reload keeps it ready.
	rewrite(t, cfgPath, staticConfig(map[string][]string{"a": {"127.0.0.1:1"}}))
	require.NoError(t, a.Reload())
	code, _ := a.get("/-/ready")
	require.Equal(t, http.StatusOK, code)
}

func TestNotReadyWhileStopping(t *testing.T) {
	t.Parallel()
	// Remote write to a receiver that never answers makes the flush
	// step last the whole flush deadline.
	release := make(chan struct{})
	var writes atomic.Int64
	rw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writes.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(rw.Close)
	t.Cleanup(func() { close(release) })
	f := startFarm(t, 1)
	cfg := staticConfig(map[string][]string{"a": farmAddrs(f)}) +
		fmt.Sprintf("remote_write:\n  - url: %s/api/v1/write\n", rw.URL)
	opts := agentOptions(t, "stopping", writeConfig(t, cfg))
	opts.Storage.FlushDeadline = 3 * time.Second
	a := startAgent(t, opts)
	a.waitReady()
	require.Eventually(t, func() bool { return writes.Load() > 0 }, startTimeout, pollInterval)

	go a.cancel()
	var sawShutdown bool
	for {
		select {
		case <-a.done:
			require.True(t, sawShutdown, "/-/ready never said 503 while the agent stopped")
			require.NoError(t, a.err)
			return
		case <-time.After(20 * time.Millisecond):
		}
		code, body := a.get("/-/ready")
		if code == http.StatusOK {
			require.False(t, sawShutdown, "ready again after shutting down")
			continue
		}
		if code == http.StatusServiceUnavailable {
			require.Contains(t, body, "shutting down")
			sawShutdown = true
		}
	}
}

// startCluster starts n agents over the same config that all join each
// other's gossip addresses, and waits until they agree on the ring.
func startCluster(t *testing.T, n int, cfg string, mutate func(i int, o *Options)) []*testAgent {
	t.Helper()
	cfgPath := writeConfig(t, cfg)
	opts := make([]Options, n)
	var join []string
	for i := range opts {
		opts[i] = agentOptions(t, fmt.Sprintf("agent-%d", i), cfgPath)
		join = append(join, opts[i].Gossip.BindAddr)
	}
	agents := make([]*testAgent, n)
	for i := range opts {
		opts[i].Join = join
		if mutate != nil {
			mutate(i, &opts[i])
		}
		agents[i] = startAgent(t, opts[i])
	}
	for _, a := range agents {
		a.waitReady()
	}
	waitAgreement(t, agents, n)
	return agents
}

// waitAgreement waits until every agent sees members active members and
// the same ring digest, and lists the same targets with the same owners.
func waitAgreement(t *testing.T, agents []*testAgent, members int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var first *ClusterTargets
		for _, a := range agents {
			var m Members
			if err := a.getJSON("/api/v1/cluster/members", &m); err != nil || !m.Agree || len(m.Members) != members {
				return false
			}
			ct, err := a.clusterTargets()
			if err != nil || len(ct.Targets) == 0 {
				return false
			}
			if first == nil {
				first = &ct
				continue
			}
			if ct.Digest != first.Digest || !slices.EqualFunc(ct.Targets, first.Targets, func(x, y ClusterTarget) bool {
				return x.URL == y.URL && slices.Equal(x.Owners, y.Owners)
			}) {
				return false
			}
		}
		return true
	}, convergeTimeout, 100*time.Millisecond, "agents did not agree")
}

func TestAPIAgreement(t *testing.T) {
	t.Parallel()
	f := startFarm(t, 12)
	agents := startCluster(t, 3, staticConfig(map[string][]string{"farm": farmAddrs(f)}), nil)

	var members []Members
	var targets []ClusterTargets
	for _, a := range agents {
		var m Members
		require.NoError(t, a.getJSON("/api/v1/cluster/members", &m))
		ct, err := a.clusterTargets()
		require.NoError(t, err)
		members = append(members, m)
		targets = append(targets, ct)
	}
	owned := map[string][]string{} // agent -> scrape URLs it owns
	for i, m := range members {
		require.Equal(t, agents[i].name, m.Self)
		require.True(t, m.Agree, "%s: disagree with %v", m.Self, m.Disagree)
		require.Equal(t, members[0].Digest, m.Digest)
		require.Equal(t, 3, m.RingSize)
		names := []string{}
		for _, mm := range m.Members {
			names = append(names, mm.Name)
			require.Equal(t, "active", mm.State, mm.Name)
			require.Equal(t, m.Digest, mm.Digest, "%s's view of %s", m.Self, mm.Name)
			require.NotEmpty(t, mm.HTTPAddr)
			require.Equal(t, mm.Name == m.Self, mm.Self)
		}
		slices.Sort(names)
		require.Equal(t, []string{"agent-0", "agent-1", "agent-2"}, names)

		ct := targets[i]
		require.Equal(t, m.Digest, ct.Digest)
		require.Equal(t, map[string]int{"farm": 12}, ct.Jobs)
		require.Len(t, ct.Targets, 12)
		// Placement is the same everywhere; the series are each agent's own
		// measurement (the leader's account on the leader).
		require.Equal(t, withoutSeries(targets[0].Targets), withoutSeries(ct.Targets), "agent %s", m.Self)
		if i == 0 {
			for _, tg := range ct.Targets {
				require.Len(t, tg.Owners, 1, tg.URL)
				owned[tg.Owners[0]] = append(owned[tg.Owners[0]], tg.URL)
			}
		}
	}
	// Members' owned counts agree with the targets' owners.
	for _, mm := range members[0].Members {
		require.Equal(t, len(owned[mm.Name]), mm.OwnedTargets, mm.Name)
	}

	requireScrapesOwned(t, agents, owned)
	// The raw JSON uses Prometheus' field names, read from an agent that
	// owns a target (the ring may give one of the three none of the 12).
	busiest := agents[0]
	for _, a := range agents {
		if len(owned[a.name]) > len(owned[busiest.name]) {
			busiest = a
		}
	}
	_, body := busiest.get("/api/v1/targets")
	for _, field := range []string{`"activeTargets"`, `"droppedTargets"`, `"scrapeUrl"`, `"scrapePool"`, `"discoveredLabels"`, `"health"`, `"lastScrape"`} {
		require.Contains(t, body, field)
	}
}

// requireScrapesOwned waits until each agent scrapes exactly the targets it
// owns (owned: agent -> scrape URLs), in Prometheus' shape.
func requireScrapesOwned(t *testing.T, agents []*testAgent, owned map[string][]string) {
	t.Helper()
	for _, a := range agents {
		want := slices.Clone(owned[a.name])
		slices.Sort(want)
		require.Eventually(t, func() bool {
			var tg Targets
			if err := a.getJSON("/api/v1/targets", &tg); err != nil {
				return false
			}
			var got []string
			for _, at := range tg.ActiveTargets {
				if at.ScrapePool != "farm" || at.Labels.Get("job") != "farm" || at.DiscoveredLabels.Get("__address__") == "" {
					return false
				}
				got = append(got, at.ScrapeURL)
			}
			slices.Sort(got)
			return slices.Equal(want, got)
		}, convergeTimeout, 100*time.Millisecond, "%s does not scrape exactly %v", a.name, want)
	}
}

func TestAdvertisedHTTP(t *testing.T) {
	for _, tc := range []struct {
		listen, cluster, advertise string
		want                       string
	}{
		{"127.0.0.1:9090", "0.0.0.0:7946", "", "127.0.0.1:9090"},
		{"0.0.0.0:9090", "0.0.0.0:7946", "10.1.2.3:7946", "10.1.2.3:9090"},
		{":9090", "", "10.1.2.3:7946", "10.1.2.3:9090"},
		{"[::]:9090", "", "10.1.2.3:7946", "10.1.2.3:9090"},
		// The gossip listen host is what gossip advertises: HTTP follows it.
		{"0.0.0.0:9090", "192.168.7.8:7946", "", "192.168.7.8:9090"},
	} {
		t.Run(tc.listen+"/"+tc.cluster+"/"+tc.advertise, func(t *testing.T) {
			a := &Agent{opts: Options{Web: WebConfig{ListenAddress: tc.listen}, Gossip: gossip.Config{BindAddr: tc.cluster, AdvertiseAddr: tc.advertise}}}
			require.Equal(t, tc.want, a.advertisedHTTP())
		})
	}
	a := &Agent{opts: Options{Web: WebConfig{ListenAddress: "0.0.0.0:9090"}, Gossip: gossip.Config{BindAddr: "0.0.0.0:7946"}}}
	host, _, err := splitJoinHostPort(a.advertisedHTTP())
	require.NoError(t, err)
	if ip, err := privateIP(); err == nil {
		require.Equal(t, ip, host)
	}
}

// withoutSeries returns ts with Series zeroed.
func withoutSeries(ts []ClusterTarget) []ClusterTarget {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Series = 0
	}
	return out
}

// TestRuntimeGOGC checks that the config file's runtime.gogc sets GOGC on
// load and on reload, with shoal's default (DefaultGoGC) when the file sets
// none. Not parallel: GOGC is the process'.
func TestRuntimeGOGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	gogc := func() int {
		v := debug.SetGCPercent(-1)
		debug.SetGCPercent(v)
		return v
	}
	cfgPath := writeConfig(t, "runtime:\n  gogc: 75\n")
	a := startAgent(t, agentOptions(t, "gogc", cfgPath))
	require.Equal(t, 75, gogc(), "runtime.gogc on start")
	rewrite(t, cfgPath, "global:\n  scrape_interval: 1s\n")
	require.NoError(t, a.Reload())
	require.Equal(t, DefaultGoGC, gogc(), "shoal's default once the file sets none")
	rewrite(t, cfgPath, "runtime:\n  gogc: -1\n")
	require.NoError(t, a.Reload())
	require.Equal(t, -1, gogc(), "off")
}

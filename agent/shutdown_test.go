package agent

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGracefulStopHandsOff stops one of three agents and checks that its
// peers both owned and scraped its targets before its Run returned, and
// that it went through the stop stages in order.
func TestGracefulStopHandsOff(t *testing.T) {
	t.Parallel()
	f := startFarm(t, 24)
	agents := startCluster(t, 3, staticConfig(map[string][]string{"farm": farmAddrs(f)}), nil)
	ct, err := agents[0].clusterTargets()
	require.NoError(t, err)
	// The victim is the agent that owns the most targets: with 24 targets on
	// three agents, any fixed one owns nothing in about 1 run of 17,000
	// (the farm's ports, and so the keys, change from run to run).
	vi := mostLoaded(ct, agents)
	victim := agents[vi]
	peers := slices.Delete(slices.Clone(agents), vi, vi+1)
	var moving []string
	for _, tg := range ct.Targets {
		if slices.Contains(tg.Owners, victim.name) {
			moving = append(moving, tg.URL)
		}
	}
	require.NotEmpty(t, moving, "the victim owns nothing: %+v", ct)

	obs := watchTakeover(t, peers, victim, moving, len(ct.Targets))
	stopStart.Store(victim, time.Now())
	require.NoError(t, victim.stop())
	returned := time.Unix(0, victim.stopped.Load())

	require.Eventually(t, func() bool {
		return !slices.ContainsFunc(obs, func(o *takeover) bool { return !o.done() })
	}, convergeTimeout, pollInterval, "peers did not take over")
	for i, o := range obs {
		o.mu.Lock()
		require.True(t, o.ownedAt.Before(returned), "%s took ownership %v after the victim's Run returned", peers[i].name, o.ownedAt.Sub(returned))
		require.True(t, o.scraped.Before(returned), "%s scraped the moved targets only %v after the victim's Run returned", peers[i].name, o.scraped.Sub(returned))
		o.mu.Unlock()
	}

	// The log shows the stages in order, then the end.
	logs := victim.logs.String()
	last := -1
	for _, step := range []string{"stage=announce step=1/6", `stage="stop scraping" step=2/6`, "stage=flush step=3/6",
		"stage=deregister step=4/6", "stage=leave step=5/6", "stage=http step=6/6", "agent stopped"} {
		i := strings.Index(logs, step)
		require.Greater(t, i, last, "%q missing or out of order", step)
		last = i
	}
	require.NotContains(t, logs, "not every peer acknowledged")
	require.NotContains(t, logs, "peers were not scraping")
	require.NotContains(t, logs, "stop stage did not complete")

	// The peers agree on a two-member ring.
	waitAgreement(t, peers, 2)
}

// takeover records when a peer stopped listing the victim as an owner and
// when its scrape pool held all the victim's targets it now owns. The
// scrape manager applies new targets only every 5 s: the victim must wait
// for that, not only for the ring to agree.
type takeover struct {
	mu               sync.Mutex
	ownedAt, scraped time.Time
}

func (o *takeover) done() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.ownedAt.IsZero() && !o.scraped.IsZero()
}

// watchTakeover polls every peer until the test ends.
func watchTakeover(t *testing.T, peers []*testAgent, victim *testAgent, moving []string, total int) []*takeover {
	done := make(chan struct{})
	var wg sync.WaitGroup
	obs := make([]*takeover, len(peers))
	for i, p := range peers {
		obs[i] = &takeover{}
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				obs[i].poll(p, victim, moving, total)
			}
		})
	}
	t.Cleanup(func() { close(done); wg.Wait() })
	return obs
}

func (o *takeover) poll(p, victim *testAgent, moving []string, total int) {
	now := time.Now()
	o.mu.Lock()
	needOwned, needScraped := o.ownedAt.IsZero(), o.scraped.IsZero()
	o.mu.Unlock()
	ct, err := p.clusterTargets()
	if err != nil {
		return
	}
	if needOwned && len(ct.Targets) == total && !slices.ContainsFunc(ct.Targets, func(tg ClusterTarget) bool {
		return slices.Contains(tg.Owners, victim.name) || len(tg.Owners) != 1
	}) {
		o.mu.Lock()
		o.ownedAt = now
		o.mu.Unlock()
	}
	if !needScraped {
		return
	}
	// Both peers together must scrape every moving target; each peer
	// records when it scrapes its own share.
	var tg Targets
	if err := p.getJSON("/api/v1/targets", &tg); err != nil {
		return
	}
	mine := map[string]bool{}
	for _, x := range ct.Targets {
		if slices.Equal(x.Owners, []string{p.name}) && slices.Contains(moving, x.URL) {
			mine[x.URL] = true
		}
	}
	for _, at := range tg.ActiveTargets {
		// Active: the scrape pool runs a loop for it. Its first scrape
		// comes within one interval.
		delete(mine, at.ScrapeURL)
	}
	if len(mine) == 0 && !start(victim).IsZero() && !ct.hasOwner(victim.name) {
		o.mu.Lock()
		o.scraped = now
		o.mu.Unlock()
	}
}

// stopStart records when the test began stopping each agent.
var stopStart sync.Map

func start(a *testAgent) time.Time {
	v, ok := stopStart.Load(a)
	if !ok {
		return time.Time{}
	}
	return v.(time.Time)
}

// mostLoaded returns the index of the agent that owns the most targets in ct.
func mostLoaded(ct ClusterTargets, agents []*testAgent) int {
	best, bestN := 0, -1
	for i, a := range agents {
		n := 0
		for _, tg := range ct.Targets {
			if slices.Contains(tg.Owners, a.name) {
				n++
			}
		}
		if n > bestN {
			best, bestN = i, n
		}
	}
	return best
}

func (ct ClusterTargets) hasOwner(name string) bool {
	return slices.ContainsFunc(ct.Targets, func(tg ClusterTarget) bool { return slices.Contains(tg.Owners, name) })
}

// TestSecondStopCutsTheHandoffShort stops an agent whose handoff lead is
// long, then asks it to stop again during the handoff wait: the wait ends at
// once and the remaining stages finish within a few seconds.
func TestSecondStopCutsTheHandoffShort(t *testing.T) {
	t.Parallel()
	f := startFarm(t, 2)
	opts := agentOptions(t, "hurried", writeConfig(t, staticConfig(map[string][]string{"farm": farmAddrs(f)})))
	opts.Gossip.HandoffLead = time.Minute
	opts.Stop.HandoffTimeout = time.Minute
	ta := startAgent(t, opts)
	ta.waitReady()

	ta.Quit()
	require.Eventually(t, func() bool { return strings.Contains(ta.logs.String(), "scraping until the handoff instant") },
		startTimeout, pollInterval, "the agent did not reach the handoff wait")
	cut := time.Now()
	ta.Quit()
	select {
	case <-ta.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the second stop request did not end the handoff wait")
	}
	require.NoError(t, ta.err)
	// The bar is 3 s; -race on a loaded machine gets some slack.
	took := time.Since(cut)
	require.Less(t, took, 6*time.Second, "remaining stages took %v", took)
	t.Logf("remaining stages after the second stop request: %v", took.Round(time.Millisecond))

	logs := ta.logs.String()
	require.Contains(t, logs, "another stop request: cutting this stage short")
	require.Contains(t, logs, "stopped scraping")
	last := strings.Index(logs, "stage=announce")
	require.GreaterOrEqual(t, last, 0)
	for _, step := range []string{`stage="stop scraping"`, "stage=flush", "stage=deregister", "stage=leave", "stage=http", "agent stopped"} {
		i := strings.Index(logs[last:], step)
		require.GreaterOrEqual(t, i, 0, "%q missing after the cut", step)
		last += i
	}
}

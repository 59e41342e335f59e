package agent

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestReadinessNotJoined: nobody listens on the only peer's port. Without
// --cluster.bootstrap the agent waits, not ready and owning nothing; with
// it, it starts a new cluster after the bootstrap timeout.
func TestReadinessNotJoined(t *testing.T) {
	t.Parallel()
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"a": {"127.0.0.1:1"}}))
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))

	opts := agentOptions(t, "lonely", cfgPath)
	opts.Join = []string{dead}
	a := startAgent(t, opts)
	require.Never(t, func() bool { code, _ := a.get("/-/ready"); return code == http.StatusOK }, 3*time.Second, pollInterval)
	code, body := a.get("/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "no answer from "+dead)
	require.Contains(t, body, "pass --cluster.bootstrap")
	require.Zero(t, a.scraper.Filter().Stats().Owned)

	opts = agentOptions(t, "first", cfgPath)
	opts.Join = []string{dead}
	opts.Gossip.Bootstrap, opts.Gossip.BootstrapTimeout = true, 500*time.Millisecond
	startAgent(t, opts).waitReady()
}

// TestRefusedAgentScrapesNothing is the misconfigured agent: it reaches a
// peer with another --cluster.name, is refused, and for many scrape
// intervals (far beyond its bootstrap timeout) scrapes nothing, is not
// ready and says why; every target is scraped once per interval.
func TestRefusedAgentScrapesNothing(t *testing.T) {
	t.Parallel()
	const watch = 10 * time.Second
	f := startFarm(t, 10)
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"farm": farmAddrs(f)}))
	po := agentOptions(t, "prod-1", cfgPath)
	po.Gossip.ClusterName = "prod"
	peer := startAgent(t, po)
	peer.waitReady()

	bo := agentOptions(t, "typo", cfgPath)
	bo.Gossip.ClusterName = "prd"
	bo.Join = []string{po.Gossip.BindAddr}
	bo.Gossip.Bootstrap, bo.Gossip.BootstrapTimeout = true, time.Second
	bad := startAgent(t, bo)

	// Let the peer's scrape loops settle before counting.
	require.Eventually(t, func() bool { return peer.scraper.Filter().Stats().Owned == 10 }, startTimeout, pollInterval)
	time.Sleep(2 * time.Second)
	before := map[string]uint64{}
	for _, tg := range f.Targets() {
		before[tg.ID] = f.Scrapes(tg.ID)
	}
	start := time.Now()
	require.Never(t, func() bool {
		code, _ := bad.get("/-/ready")
		return code == http.StatusOK || bad.scraper.Filter().Stats().Owned > 0 || len(peer.Node().Peers()) > 1
	}, watch, pollInterval, "the refused agent became ready, owned targets or joined")
	elapsed := time.Since(start)
	var tg Targets
	require.NoError(t, bad.getJSON("/api/v1/targets", &tg))
	require.Empty(t, tg.ActiveTargets, "the refused agent scrapes")
	// One scrape a second, by one agent: twice that would be a duplicate.
	maxScrapes := uint64(elapsed/time.Second) + 2
	for _, x := range f.Targets() {
		d := f.Scrapes(x.ID) - before[x.ID]
		require.LessOrEqual(t, d, maxScrapes, "target %s scraped %d times in %v", x.ID, d, elapsed)
	}
	code, body := bad.get("/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, fmt.Sprintf(`refused by %s: cluster name "prod" differs from ours "prd" (--cluster.name)`, po.Gossip.BindAddr))
	require.Contains(t, bad.logs.String(), "cannot join the cluster, owning nothing; will retry")
	t.Logf("refused agent owned and scraped 0 of 10 targets for %v; /-/ready: %s", elapsed.Round(time.Second), body)
}

// stateLog records how one agent sees another's state, polling until the
// test ends.
type stateLog struct {
	mu   sync.Mutex
	seen []gossip.State
}

func watchPeerState(t *testing.T, observer *testAgent, name string) *stateLog {
	l := &stateLog{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, p := range observer.Node().Peers() {
				if p.Name == name && p.State != 0 {
					l.mu.Lock()
					if len(l.seen) == 0 || l.seen[len(l.seen)-1] != p.State {
						l.seen = append(l.seen, p.State)
					}
					l.mu.Unlock()
				}
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
	return l
}

// activeAfterLeaving reports whether the peer was seen active after it was
// first seen leaving.
func (l *stateLog) activeAfterLeaving() (bool, []gossip.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	leaving := false
	for _, s := range l.seen {
		if s == gossip.StateLeaving {
			leaving = true
		}
		if leaving && s == gossip.StateActive {
			return true, append([]gossip.State(nil), l.seen...)
		}
	}
	return false, append([]gossip.State(nil), l.seen...)
}

// quitAndTime asks ta to stop and returns how long Run took to return; it
// fails beyond the stop bound the operator is promised, the handoff timeout
// plus the flush deadline.
func quitAndTime(t *testing.T, ta *testAgent) time.Duration {
	t.Helper()
	bound := ta.opts.Stop.HandoffTimeout + ta.opts.Storage.FlushDeadline
	start := time.Now()
	ta.Quit()
	select {
	case <-ta.done:
	case <-time.After(bound + 30*time.Second):
		t.Fatalf("%s did not stop", ta.name)
	}
	took := time.Unix(0, ta.stopped.Load()).Sub(start)
	require.NoError(t, ta.err)
	require.Less(t, took, bound, "stop took %v, more than handoff timeout + flush deadline", took)
	return took
}

// TestStopInEveryState stops an agent in each state a stop may meet:
// joining, rejoining, reloading, and taking over targets (its join
// handoff, before its owning instant). Its peer never sees it active after
// it started leaving, and it exits within handoff timeout + flush deadline.
func TestStopInEveryState(t *testing.T) {
	t.Parallel()
	f := startFarm(t, 6)
	cfg := staticConfig(map[string][]string{"farm": farmAddrs(f)})

	t.Run("join in progress", func(t *testing.T) {
		t.Parallel()
		cfgPath := writeConfig(t, cfg)
		po := agentOptions(t, "peer", cfgPath)
		po.Gossip.ClusterName = "other" // refuses the joiner for ever
		peer := startAgent(t, po)
		peer.waitReady()
		o := agentOptions(t, "joiner", cfgPath)
		o.Join = []string{po.Gossip.BindAddr}
		j := startAgent(t, o)
		require.Eventually(t, func() bool { return j.logs.contains("cannot join the cluster") }, startTimeout, pollInterval)
		took := quitAndTime(t, j)
		require.Equal(t, gossip.StateLeaving, j.Node().State())
		require.Contains(t, j.logs.String(), "nothing to hand over")
		t.Logf("stopped while joining: exit after %v", took.Round(time.Millisecond))
	})

	t.Run("rejoin in progress", func(t *testing.T) {
		t.Parallel()
		silent := silentListener(t)
		agents := startCluster(t, 2, cfg, func(i int, o *Options) {
			o.Join = append(o.Join, silent.addr)
			o.Gossip.RejoinInterval = 50 * time.Millisecond
			o.Gossip.Timers.TCPTimeout = 3 * time.Second
		})
		seen := watchPeerState(t, agents[0], agents[1].name)
		// Each rejoin waits on the silent address for the TCP timeout.
		n := silent.accepted()
		require.Eventually(t, func() bool { return silent.accepted() > n+1 }, startTimeout, pollInterval)
		took := quitAndTime(t, agents[1])
		bad, states := seen.activeAfterLeaving()
		require.False(t, bad, "the peer saw it active again: %v", states)
		require.Contains(t, states, gossip.StateLeaving)
		t.Logf("stopped while rejoining: exit after %v, peer saw %v", took.Round(time.Millisecond), states)
	})

	t.Run("reload in progress", func(t *testing.T) {
		t.Parallel()
		cfgPath := writeConfig(t, cfg)
		agents := startCluster(t, 2, cfg, func(i int, o *Options) {
			if i == 1 {
				o.ConfigFile = cfgPath
			}
		})
		ta := agents[1]
		seen := watchPeerState(t, agents[0], ta.name)
		// A FIFO in place of the file: the reload blocks reading it.
		require.NoError(t, os.Remove(cfgPath))
		require.NoError(t, syscall.Mkfifo(cfgPath, 0o644))
		reloaded := make(chan error, 1)
		go func() { reloaded <- ta.Reload() }()
		require.Eventually(t, func() bool { return ta.logs.contains("loading configuration file") }, startTimeout, pollInterval)
		took := quitAndTime(t, ta)
		// Now let the reload read its file: it must apply nothing.
		w, err := os.OpenFile(cfgPath, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = w.WriteString(cfg)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.ErrorIs(t, <-reloaded, ErrStopping)
		bad, states := seen.activeAfterLeaving()
		require.False(t, bad, "the peer saw it active again: %v", states)
		require.Contains(t, states, gossip.StateLeaving)
		t.Logf("stopped while reloading: exit after %v, peer saw %v", took.Round(time.Millisecond), states)
	})

	t.Run("handoff in progress", func(t *testing.T) {
		t.Parallel()
		cfgPath := writeConfig(t, cfg)
		first := startAgent(t, agentOptions(t, "owner", cfgPath))
		first.waitReady()
		o := agentOptions(t, "taker", cfgPath)
		o.Join = []string{first.opts.Gossip.BindAddr}
		// Its targets would switch to it 20 s after it joined.
		o.Gossip.HandoffLead = 20 * time.Second
		seen := watchPeerState(t, first, "taker")
		j := startAgent(t, o)
		require.Eventually(t, func() bool { return j.Node().State() == gossip.StateActive }, startTimeout, pollInterval)
		took := quitAndTime(t, j)
		require.Less(t, took, o.Gossip.HandoffLead, "it waited for an instant it never reached")
		bad, states := seen.activeAfterLeaving()
		require.False(t, bad, "the peer saw it active again: %v", states)
		require.Contains(t, j.logs.String(), "nothing to hand over")
		// The owner kept every target throughout.
		require.Equal(t, 6, first.scraper.Filter().Stats().Owned)
		require.Eventually(t, func() bool { return first.Node().Schedule().Final().Len() == 1 }, convergeTimeout, pollInterval)
		t.Logf("stopped while taking over: exit after %v, peer saw %v", took.Round(time.Millisecond), states)
	})
}

// silent is a TCP listener that accepts and never answers: a memberlist
// exchange with it lasts the TCP timeout.
type silent struct {
	addr  string
	mu    sync.Mutex
	count int
}

func (s *silent) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func silentListener(t *testing.T) *silent {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &silent{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.count++
			conns = append(conns, c)
			s.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

package gossip

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// refusalWatch is how long the refusal tests watch a refused node: many
// join rounds, and far beyond its bootstrap timeout.
const refusalWatch = 3 * time.Second

// startNodeBefore is startNode with a hook that runs between New and Run.
func startNodeBefore(t *testing.T, name string, join []string, mutate func(*Config), before func(*Node)) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.ClusterName, cfg.BindAddr, cfg.HTTPAddr, cfg.Version = name, "test", "127.0.0.1:0", "127.0.0.1:9090", "test"
	cfg.HandoffLead = 0
	if len(join) > 0 {
		cfg.Peers = StaticPeers(join...)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := New(cfg, testLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	if before != nil {
		before(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() { tn.stop() })
	require.Eventually(t, func() bool { return n.Addr() != "" }, 10*time.Second, 5*time.Millisecond)
	return tn
}

// TestRefusedNeverStartsAlone: a node that reaches a peer which refuses it
// keeps retrying, never becomes active (not even with --cluster.bootstrap
// and a bootstrap timeout far shorter than the watch), and says why.
func TestRefusedNeverStartsAlone(t *testing.T) {
	key := []byte("0123456789abcdef")
	withA := func(c *Config) { c.SecretKey = key }
	for _, tc := range []struct {
		name   string
		peer   func(*Config)
		joiner func(*Config)
		before func(*Node)
		reason string
	}{
		{name: "other cluster name", peer: withA, joiner: func(c *Config) { c.SecretKey, c.ClusterName = key, "other" },
			reason: `cluster name "test" differs from ours "other" (--cluster.name)`},
		{name: "other cluster name, no keys", joiner: func(c *Config) { c.ClusterName = "prd" },
			reason: `cluster name "test" differs from ours "prd"`},
		{name: "other secret key", peer: withA, joiner: func(c *Config) { c.SecretKey = []byte("fedcba9876543210") },
			reason: "its gossip key differs"},
		{name: "no secret key", peer: withA, joiner: func(*Config) {},
			reason: "it gossips with a key and this agent has none"},
		{name: "a key the peer lacks", joiner: withA,
			reason: "it gossips without a key and this agent has one"},
		{name: "metadata refused", peer: withA, joiner: withA,
			// A clock two minutes ahead: peers refuse its start time.
			before: func(n *Node) { n.started = time.Now().Add(2 * time.Minute) },
			reason: "it refused this agent (b): node metadata: start time is "}, // about 2m ahead: the seconds depend on the run
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startNode(t, "a", nil, tc.peer)
			b := startNodeBefore(t, "b", []string{a.Addr()}, func(c *Config) {
				c.Bootstrap, c.BootstrapTimeout = true, 200*time.Millisecond
				tc.joiner(c)
			}, tc.before)
			require.Never(t, func() bool { return b.Ready() || a.Ring().Has("b") || b.Ring().Has("b") },
				refusalWatch, 10*time.Millisecond, "a refused node became active or entered a ring")
			require.Equal(t, StateJoining, b.State())
			require.Contains(t, b.NotReadyReason(), "refused by "+a.Addr()+": "+tc.reason)
			require.Positive(t, testutil.ToFloat64(b.metrics.joinAttempts.WithLabelValues(joinRefused)))
			require.Zero(t, testutil.ToFloat64(b.metrics.joinAttempts.WithLabelValues(joinJoined)))
			t.Logf("not ready: %s", b.NotReadyReason())
		})
	}
}

// TestBootstrapOnlyWhenNobodyAnswers: with nobody listening at the join
// address, a node without --cluster.bootstrap waits for ever, one with it
// starts alone after the bootstrap timeout, not before.
func TestBootstrapOnlyWhenNobodyAnswers(t *testing.T) {
	dead := closedAddr(t)
	t.Run("without bootstrap", func(t *testing.T) {
		n := startNode(t, "lonely", []string{dead}, nil)
		require.Never(t, n.Ready, refusalWatch, 10*time.Millisecond)
		require.Contains(t, n.NotReadyReason(), "no answer from "+dead)
		require.Contains(t, n.NotReadyReason(), "pass --cluster.bootstrap")
	})
	t.Run("with bootstrap", func(t *testing.T) {
		const timeout = time.Second
		start := time.Now()
		n := startNode(t, "first", []string{dead}, func(c *Config) { c.Bootstrap, c.BootstrapTimeout = true, timeout })
		require.Eventually(t, n.Ready, 10*time.Second, 5*time.Millisecond)
		took := time.Since(start)
		require.GreaterOrEqual(t, took, timeout)
		t.Logf("bootstrapped after %v", took.Round(time.Millisecond))
	})
}

// TestPeersJoiningEachOtherNeedNoBootstrap: two nodes that list each other
// form a cluster when the second arrives, without --cluster.bootstrap.
func TestPeersJoiningEachOtherNeedNoBootstrap(t *testing.T) {
	var bAddr atomic.Pointer[string]
	a := startNode(t, "a", nil, func(c *Config) {
		c.Peers = func(context.Context) ([]string, error) {
			if p := bAddr.Load(); p != nil {
				return []string{*p}, nil
			}
			return nil, nil
		}
	})
	require.Never(t, a.Ready, time.Second, 10*time.Millisecond, "a started alone")
	b := startNode(t, "b", []string{a.Addr()}, nil)
	addr := b.Addr()
	bAddr.Store(&addr)
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
}

// TestWaitForSize: nodes own nothing until three are members; a timeout
// lets a node go on with fewer.
func TestWaitForSize(t *testing.T) {
	size := func(c *Config) { c.WaitForSize = 3 }
	a := startNode(t, "a", nil, size)
	b := startNode(t, "b", []string{a.Addr()}, size)
	require.Never(t, func() bool { return a.Ready() || b.Ready() }, time.Second, 10*time.Millisecond)
	require.Contains(t, a.NotReadyReason(), "waiting for 3 members (--cluster.wait-for-size), 2 so far: a, b")
	c := startNode(t, "c", []string{a.Addr()}, size)
	waitConverged(t, []*testNode{a, b, c}, 3, 15*time.Second)

	start := time.Now()
	d := startNode(t, "d", nil, func(c *Config) { c.WaitForSize, c.WaitForSizeTimeout = 3, time.Second })
	require.Eventually(t, d.Ready, 10*time.Second, 5*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), time.Second)
}

// TestDuplicateNameStandsDownInTheFirstExchange: a joiner whose name is in
// use learns it from the join's own push/pull, never becomes active, and
// its Run returns within a second or two, not after a timeout.
func TestDuplicateNameStandsDownInTheFirstExchange(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	seen := watchStates(t, nodes[0], "node-01")
	start := time.Now()
	dup := startNode(t, "node-01", []string{nodes[0].Addr()}, func(c *Config) { c.Bootstrap, c.BootstrapTimeout = true, 100*time.Millisecond })
	select {
	case err := <-dup.done:
		dup.once.Do(func() { dup.err = err })
		require.ErrorIs(t, err, ErrNameConflict)
	case <-time.After(5 * time.Second):
		t.Fatal("a node with a name in use was not refused within 5s")
	}
	took := time.Since(start)
	t.Logf("stood down after %v", took.Round(time.Millisecond))
	require.Equal(t, StateJoining, dup.State(), "the duplicate became %s", dup.State())
	require.Equal(t, []State{StateActive}, seen(), "the original stays active as node-01")
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// watchStates polls how observer sees member name until the test ends and
// returns the distinct states seen, in order (0 while it is not a member
// is left out).
func watchStates(t *testing.T, observer *testNode, name string) func() []State {
	var (
		mu   sync.Mutex
		seen []State
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	poll := func() {
		for _, p := range observer.Peers() {
			if p.Name == name && p.State != 0 {
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != p.State {
					seen = append(seen, p.State)
				}
				mu.Unlock()
			}
		}
	}
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				poll()
			}
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return func() []State {
		poll()
		mu.Lock()
		defer mu.Unlock()
		return append([]State(nil), seen...)
	}
}

// TestStopDuringJoinIsFinal: a node told to leave while it is still
// joining leaves at once, owning nothing, and a peer that becomes
// reachable afterwards never sees it active.
func TestStopDuringJoinIsFinal(t *testing.T) {
	a := startNode(t, "a", nil, nil)
	var open atomic.Bool
	dead := closedAddr(t)
	b := startNode(t, "b", nil, func(c *Config) {
		c.Peers = func(context.Context) ([]string, error) {
			if open.Load() {
				return []string{a.Addr()}, nil
			}
			return []string{dead}, nil
		}
	})
	seen := watchStates(t, a, "b")
	require.Eventually(t, func() bool { return b.NotReadyReason() != "not joined the cluster yet" }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	until, err := b.AnnounceLeaving(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, until.IsZero(), "a joining node owns nothing, so it leaves at once")
	open.Store(true)
	require.Never(t, func() bool { return b.State() != StateLeaving || a.Ring().Has("b") }, 2*time.Second, 5*time.Millisecond)
	start := time.Now()
	require.NoError(t, b.stop())
	t.Logf("Run returned %v after the cancellation", time.Since(start).Round(time.Millisecond))
	require.NotContains(t, seen(), StateActive)
}

// TestStopDuringRejoinIsFinal: a rejoin in progress (an address that
// accepts and never answers holds it for the TCP timeout) does not bring a
// leaving node back, and Run returns once the rejoin ends.
func TestStopDuringRejoinIsFinal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var accepted atomic.Int64
	var conns sync.WaitGroup
	hold := make(chan struct{})
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns.Go(func() { <-hold; _ = c.Close() })
		}
	})
	t.Cleanup(func() { _ = l.Close(); close(hold); conns.Wait() })

	a := startNode(t, "a", nil, nil)
	tcp := time.Second
	b := startNode(t, "b", []string{a.Addr(), l.Addr().String()}, func(c *Config) {
		c.RejoinInterval, c.Timers.TCPTimeout = 20*time.Millisecond, tcp
	})
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
	seen := watchStates(t, a, "b")
	n := accepted.Load()
	require.Eventually(t, func() bool { return accepted.Load() > n }, 10*time.Second, 5*time.Millisecond, "no rejoin in progress")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = b.AnnounceLeaving(ctx, time.Now())
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, b.stop())
	took := time.Since(start)
	t.Logf("Run returned %v after the cancellation (TCP timeout %v)", took.Round(time.Millisecond), tcp)
	require.Less(t, took, tcp+leaveTimeout+2*time.Second)
	states := seen()
	require.Equal(t, []State{StateActive, StateLeaving}, states)
}

package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight: probeNode
	// returns by itself once its ack timer (the probe interval, scaled up by
	// Lifeguard awareness, so up to a few seconds) fires.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// testNode is a Node running in this process on 127.0.0.1.
type testNode struct {
	*Node
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SHOAL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return nil
}

func startNode(t testing.TB, name string, join []string, mutate func(*Config)) *testNode {
	t.Helper()
	return startNodeLog(t, name, join, mutate, testLogger(t))
}

// startNodeLog is startNode with a logger of the test's choosing.
func startNodeLog(t testing.TB, name string, join []string, mutate func(*Config), logger *slog.Logger) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.ClusterName = "test"
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:9090"
	cfg.Version = "test"
	if len(join) > 0 {
		cfg.Peers = StaticPeers(join...)
	}
	cfg.BootstrapTimeout = 5 * time.Second
	// Switch owners as soon as the news arrives; the tests of fenced
	// changes set a lead.
	cfg.HandoffLead = 0
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := New(cfg, logger, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() { tn.stop() })
	require.Eventually(t, func() bool { return n.Addr() != "" }, 10*time.Second, 5*time.Millisecond)
	return tn
}

// stop cancels Run (graceful leave) and waits for it.
func (tn *testNode) stop() error {
	tn.once.Do(func() {
		tn.cancel()
		tn.err = <-tn.done
	})
	return tn.err
}

// kill stops the node without leaving, as kill -9 would.
func (tn *testNode) kill() {
	tn.once.Do(func() {
		close(tn.crash)
		tn.err = <-tn.done
		tn.cancel()
	})
}

func startCluster(t testing.TB, size int, mutate func(*Config)) []*testNode {
	t.Helper()
	first := startNode(t, "node-00", nil, mutate)
	nodes := []*testNode{first}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("node-%02d", i), []string{first.Addr()}, mutate))
	}
	waitConverged(t, nodes, size, 30*time.Second)
	return nodes
}

// waitConverged waits until every node sees want active members and all
// advertise the same digest.
func waitConverged(t testing.TB, nodes []*testNode, want int, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		var digest uint64
		for i, n := range nodes {
			if n.Ring().Len() != want {
				return false
			}
			if ok, _ := n.Agreement(); !ok {
				return false
			}
			if i == 0 {
				digest = n.Ring().Digest()
			} else if n.Ring().Digest() != digest {
				return false
			}
		}
		return true
	}, timeout, 10*time.Millisecond)
}

func TestClusterFormsAndAgreesOnOwners(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	for _, n := range nodes {
		require.True(t, n.Ready())
		require.Len(t, n.Peers(), 5)
	}
	// Every key has exactly one owner across the cluster.
	for k := uint64(0); k < 2000; k++ {
		owners := 0
		for _, n := range nodes {
			if n.Owns(k) {
				owners++
			}
		}
		require.Equal(t, 1, owners, "key %d", k)
	}
}

func TestReplicationFactor(t *testing.T) {
	nodes := startCluster(t, 4, func(c *Config) { c.ReplicationFactor = 2 })
	for k := uint64(0); k < 1000; k++ {
		owners := 0
		for _, n := range nodes {
			if n.Owns(k) {
				owners++
			}
		}
		require.Equal(t, 2, owners, "key %d", k)
	}
}

func TestGracefulLeaveHandsOverWhileAlive(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leaver := nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := leaver.AnnounceLeaving(ctx, time.Now())
	require.NoError(t, err)
	require.False(t, leaver.Ready())

	// The leaver is still alive, but no ring contains it any more.
	for _, n := range nodes[:2] {
		require.False(t, n.Ring().Has(leaver.Name()), n.Name())
		require.Len(t, n.Peers(), 3)
		for k := uint64(0); k < 500; k++ {
			require.False(t, leaver.Owns(k))
		}
	}
	var leavingSeen bool
	for _, p := range nodes[0].Peers() {
		if p.Name == leaver.Name() {
			leavingSeen = p.State == StateLeaving
		}
	}
	require.True(t, leavingSeen)

	require.NoError(t, leaver.stop())
	require.Eventually(t, func() bool { return len(nodes[0].Peers()) == 2 && len(nodes[1].Peers()) == 2 },
		10*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(nodes[0].metrics.leaves))
}

func TestCrashedNodeDeclaredDead(t *testing.T) {
	nodes := startCluster(t, 4, nil)
	nodes[3].kill()
	waitConverged(t, nodes[:3], 3, 30*time.Second)
	for _, n := range nodes[:3] {
		require.False(t, n.Ring().Has("node-03"))
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(nodes[0].metrics.failures) == 1 }, 10*time.Second, 10*time.Millisecond)
}

func TestSameKeyJoins(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := startNode(t, "a", nil, func(c *Config) { c.SecretKey = key })
	b := startNode(t, "b", []string{a.Addr()}, func(c *Config) { c.SecretKey = key })
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
}

func TestDuplicateNameIsRefused(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	before := nodes[0].Ring().Digest()
	var origAddr string
	for _, p := range nodes[0].Peers() {
		if p.Name == "node-01" {
			origAddr = p.Addr
		}
	}
	dup := startNode(t, "node-01", []string{nodes[0].Addr()}, nil)
	select {
	case err := <-dup.done:
		dup.once.Do(func() { dup.err = err })
		require.ErrorIs(t, err, ErrNameConflict)
	case <-time.After(15 * time.Second):
		t.Fatal("a node with a name in use was not refused")
	}
	// The ring still has the original node-01, at its original address.
	require.Equal(t, before, nodes[0].Ring().Digest())
	for _, p := range nodes[0].Peers() {
		if p.Name == "node-01" {
			require.Equal(t, origAddr, p.Addr)
		}
	}
	require.GreaterOrEqual(t, testutil.ToFloat64(nodes[0].metrics.conflicts), 1.0)
}

// TestObserversSeeUpdatedRing checks that observers are poked after the view
// has been updated: the poke that follows b's arrival already sees b.
func TestObserversSeeUpdatedRing(t *testing.T) {
	a := startNode(t, "a", nil, nil)
	var calls, sawB atomic.Int64
	a.Observe(ObserverFunc(func() {
		calls.Add(1)
		if a.Schedule().Final().Has("b") {
			sawB.Add(1)
		}
	}))
	b := startNode(t, "b", []string{a.Addr()}, nil)
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
	require.Positive(t, calls.Load())
	require.Eventually(t, func() bool { return sawB.Load() > 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestRejoinMergesSeparateClusters(t *testing.T) {
	// Both start alone (the provider knows nobody yet), then the provider
	// learns the other's address: the rejoin loop merges them.
	var bAddr atomic.Pointer[string]
	a := startNode(t, "a", nil, func(c *Config) {
		c.RejoinInterval = 200 * time.Millisecond
		c.Bootstrap, c.BootstrapTimeout = true, 200*time.Millisecond
		c.Peers = func(context.Context) ([]string, error) {
			if p := bAddr.Load(); p != nil {
				return []string{*p}, nil
			}
			return nil, nil
		}
	})
	b := startNode(t, "b", nil, nil)
	require.Eventually(t, func() bool { return a.Ready() && b.Ready() }, 5*time.Second, 10*time.Millisecond)
	addr := b.Addr()
	bAddr.Store(&addr)
	waitConverged(t, []*testNode{a, b}, 2, 10*time.Second)
}

func TestMetricsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.HandoffLead = "m", "127.0.0.1:0", 0
	n, err := New(cfg, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	require.Eventually(t, n.Ready, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, testutil.GatherAndCompare(reg, stringsReader(`
# HELP shoal_cluster_ring_members Members in the ring (active members).
# TYPE shoal_cluster_ring_members gauge
shoal_cluster_ring_members 1
`), "shoal_cluster_ring_members"))
	count, err := testutil.GatherAndCount(reg, "shoal_cluster_peers", "shoal_cluster_health_score", "shoal_cluster_ring_info", "shoal_cluster_peers_agree")
	require.NoError(t, err)
	require.Equal(t, 4+1+1+1, count)
	cancel()
	require.NoError(t, <-done)
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "--cluster.node-name must not be empty"},
		{"bad bind", func(c *Config) { c.BindAddr = "nope" }, `--cluster.listen-address "nope"`},
		{"bad port", func(c *Config) { c.BindAddr = "0.0.0.0:99999" }, `port must be a number between 0 and 65535, got "99999"`},
		{"advertise hostname", func(c *Config) { c.AdvertiseAddr = "host:7946" }, "host must be an IP address"},
		{"key size", func(c *Config) { c.SecretKey = []byte("short") }, "got 5 bytes"},
		{"rf", func(c *Config) { c.ReplicationFactor = 7 }, "--cluster.replication-factor must be between 1 and 5, got 7"},
		{"weight", func(c *Config) { c.Weight = -2 }, "--cluster.weight must be above 0 and at most 100, got -2"},
		{"zero weight", func(c *Config) { c.Weight = 0 }, "--cluster.weight must be above 0"},
		{"negative lead", func(c *Config) { c.HandoffLead = -time.Second }, "--cluster.handoff-lead must not be negative, got -1s"},
		{"zero timer", func(c *Config) { c.Timers.GossipInterval = 0 }, "--cluster.gossip-interval must be positive, got 0s"},
		{"key file", func(c *Config) { c.SecretKeyFile = "/nonexistent/key" }, "--cluster.secret-key-file: open /nonexistent/key"},
		{"probe", func(c *Config) { c.Timers.ProbeTimeout = 2 * time.Second }, "must be shorter than --cluster.probe-interval"},
		{"no key on every interface", func(c *Config) { c.BindAddr = "0.0.0.0:7946" },
			`--cluster.listen-address "0.0.0.0:7946" is reachable from other hosts and gossip has no key, so anyone who can reach it could join the cluster and take its targets: create a key with ` +
				"`openssl rand -base64 32 > key`, give the same file to every agent with --cluster.secret-key-file, or pass --cluster.insecure to gossip unauthenticated"},
		{"no key on a private address", func(c *Config) { c.BindAddr = "10.1.2.3:7946" }, `--cluster.listen-address "10.1.2.3:7946" is reachable from other hosts`},
		{"no key on a host name", func(c *Config) { c.BindAddr = "shoal-1:7946" }, `--cluster.listen-address "shoal-1:7946" is reachable`},
		{"no key, loopback listen, public advertise", func(c *Config) { c.AdvertiseAddr = "192.0.2.1:7946" }, `--cluster.advertise-address "192.0.2.1:7946" is reachable`},
		{"insecure on every interface", func(c *Config) { c.BindAddr, c.Insecure = "0.0.0.0:7946", true }, ""},
		{"key on every interface", func(c *Config) { c.BindAddr, c.SecretKey = "0.0.0.0:7946", []byte("0123456789abcdef") }, ""},
		{"loopback needs no key", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "127.0.0.1:7946", "127.0.0.1:7946" }, ""},
		{"localhost needs no key", func(c *Config) { c.BindAddr = "localhost:7946" }, ""},
		{"ipv6 loopback needs no key", func(c *Config) { c.BindAddr = "[::1]:0" }, ""},
		{"http address with a path", func(c *Config) { c.HTTPAddr = "127.0.0.1:9090/x" }, `advertised http address "127.0.0.1:9090/x": port must be a number`},
		{"bootstrap timeout", func(c *Config) { c.BootstrapTimeout = 0 }, "--cluster.bootstrap-timeout must be positive, got 0s"},
		{"wait for size", func(c *Config) { c.WaitForSize = -1 }, "--cluster.wait-for-size must not be negative (0 does not wait), got -1"},
		{"wait for size timeout", func(c *Config) { c.WaitForSizeTimeout = -time.Second }, "--cluster.wait-for-size-timeout must not be negative (0 waits for ever), got -1s"},
		{"ok", func(*Config) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Name, c.BindAddr = "n", "127.0.0.1:0"
			tc.mutate(&c)
			_, err := New(c, nil, nil)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func TestOthersWantsIPs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.AdvertiseAddr = "self", "127.0.0.1:7946", "127.0.0.1:7946"
	n, err := New(cfg, nil, nil)
	require.NoError(t, err)
	self := "127.0.0.1:7946" // as Run stores it once memberlist listens
	n.self.Store(&self)
	got := n.others([]string{"127.0.0.2:7946", "127.0.0.1:7946", "peer.example:7946", "nonsense", "127.0.0.2:7946"})
	require.Equal(t, []string{"127.0.0.2:7946"}, got, "self, names, malformed and repeated addresses are dropped")
}

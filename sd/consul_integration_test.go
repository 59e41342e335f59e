package sd

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// peerLog collects Watch callbacks.
type peerLog struct {
	mtx  sync.Mutex
	last []string
	n    int
}

func (l *peerLog) set(peers []string) {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	l.last, l.n = peers, l.n+1
}

func (l *peerLog) is(want ...string) func() bool {
	return func() bool {
		l.mtx.Lock()
		defer l.mtx.Unlock()
		return l.n > 0 && slices.Equal(l.last, want)
	}
}

// runRegistration registers an agent and keeps its check updated until the
// test ends; the returned flag is its readiness.
func runRegistration(t *testing.T, client *api.Client, id, gossip string) (*Registration, *atomic.Bool) {
	r, ready, _ := runRegistrationStoppable(t, client, id, gossip)
	return r, ready
}

// runRegistrationStoppable is runRegistration with a func that stops the
// renewals, as a crash would.
func runRegistrationStoppable(t *testing.T, client *api.Client, id, gossip string) (*Registration, *atomic.Bool, func()) {
	t.Helper()
	cfg := DefaultRegistrationConfig()
	cfg.Service, cfg.TTL = "shoal-it", 1500*time.Millisecond
	r, err := NewRegistration(client, RegistrationOptions{
		RegistrationConfig: cfg, ID: id, Address: "127.0.0.1", Port: 8080,
		GossipAddr: gossip, Version: "test",
	}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, r.Register(t.Context()))
	ready := &atomic.Bool{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, ready.Load) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return r, ready, stop
}

func TestConsulRegistrationAndPeerWatch(t *testing.T) {
	consul := testenv.StartConsul(t)
	client := consul.Client()

	p, err := NewPeerProvider(client, "shoal-it", nil)
	require.NoError(t, err)
	log := &peerLog{}
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		p.Watch(ctx, log.set)
	}()
	defer func() {
		cancel()
		<-watchDone
	}()
	const wait, tick = 20 * time.Second, 20 * time.Millisecond
	require.Eventually(t, log.is(), wait, tick, "empty list first")

	// A registered agent is listed at once, before it is ready (its check
	// is warning), so that agents starting together find each other.
	r1, ready1 := runRegistration(t, client, "n1", "127.0.0.1:7001")
	_, ready2, crash2 := runRegistrationStoppable(t, client, "n2", "127.0.0.1:7002")
	require.Eventually(t, log.is("127.0.0.1:7001", "127.0.0.1:7002"), wait, tick, "listed while joining")
	checks, _, err := client.Health().Checks("shoal-it", nil)
	require.NoError(t, err)
	for _, c := range checks {
		require.Equal(t, api.HealthWarning, c.Status, "alive but not ready is warning")
	}

	ready1.Store(true)
	ready2.Store(true)
	require.Eventually(t, func() bool {
		checks, _, err := client.Health().Checks("shoal-it", nil)
		return err == nil && len(checks) == 2 && checks.AggregatedStatus() == api.HealthPassing
	}, wait, tick, "ready turns the checks passing")

	// A crashed agent stops renewing: its TTL expires, the check turns
	// critical and it is no longer offered as a peer.
	crash2()
	require.Eventually(t, log.is("127.0.0.1:7001"), wait, tick, "an expired TTL drops the peer")

	// Consul loses n1 (as a -dev restart would): Run registers it again.
	require.NoError(t, client.Agent().ServiceDeregister("n1"))
	require.Eventually(t, func() bool {
		svcs, err := client.Agent().Services()
		return err == nil && svcs["n1"] != nil
	}, wait, tick, "registered again")
	require.Eventually(t, log.is("127.0.0.1:7001"), wait, tick)

	// Run is still going, so it may register n1 again before it is stopped.
	ready1.Store(false)
	require.NoError(t, r1.Deregister(t.Context()))
	require.Eventually(t, log.is(), wait, tick)
}

func TestConsulWatchSurvivesRestart(t *testing.T) {
	consul := testenv.StartConsul(t)
	client := consul.Client()
	_, ready := runRegistration(t, client, "n1", "127.0.0.1:7001")
	ready.Store(true)

	p, err := NewPeerProvider(client, "shoal-it", nil)
	require.NoError(t, err)
	p.minBackoff = 50 * time.Millisecond
	log := &peerLog{}
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		p.Watch(ctx, log.set)
	}()
	defer func() {
		cancel()
		<-watchDone
	}()
	require.Eventually(t, log.is("127.0.0.1:7001"), 20*time.Second, 20*time.Millisecond)

	require.NoError(t, consul.Stop())
	require.NoError(t, consul.Start())
	// The restarted agent has new Raft indexes; Watch resets and keeps going.
	_, ready2 := runRegistration(t, client, "n2", "127.0.0.1:7002")
	ready2.Store(true)
	require.Eventually(t, log.is("127.0.0.1:7001", "127.0.0.1:7002"), 30*time.Second, 20*time.Millisecond)
}

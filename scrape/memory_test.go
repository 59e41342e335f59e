package scrape

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

const (
	memTargets       = 10_000
	memGroups        = 100 // Consul SD: one group per service, instances inside
	maxBytesNonOwned = 1024
)

// consulLikeTargets builds memTargets targets with the labels Consul SD sets.
func consulLikeTargets() map[string][]*targetgroup.Group {
	groups := make([]*targetgroup.Group, 0, memGroups)
	for g := range memGroups {
		tg := &targetgroup.Group{
			Source: fmt.Sprintf("svc-%d", g),
			Labels: model.LabelSet{"__meta_consul_service": model.LabelValue(fmt.Sprintf("svc-%d", g)), "__meta_consul_dc": "dc1"},
		}
		for i := range memTargets / memGroups {
			tg.Targets = append(tg.Targets, model.LabelSet{
				model.AddressLabel:           model.LabelValue(fmt.Sprintf("10.%d.%d.%d:9100", g, i/250, i%250)),
				"__meta_consul_node":         model.LabelValue(fmt.Sprintf("node-%d-%d", g, i)),
				"__meta_consul_service_id":   model.LabelValue(fmt.Sprintf("svc-%d-%d", g, i)),
				"__meta_consul_tags":         ",prod,metrics,",
				"__meta_consul_service_port": "9100",
			})
		}
		groups = append(groups, tg)
	}
	return map[string][]*targetgroup.Group{"app": groups}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureNonOwned runs the filter and Prometheus' scrape manager on 10,000
// discovered targets of which this agent owns none, and returns the heap they
// add per target, beyond the discovery snapshot itself (which the discovery
// manager holds whether or not shoal filters it).
func measureNonOwned(tb testing.TB) (perTarget, inputPerTarget float64, m *Manager) {
	tb.Helper()
	discovered := make(chan map[string][]*targetgroup.Group)
	m, err := New(Options{
		Owner:                   &fakeOwner{ready: true, owns: ownNone},
		Discovered:              discovered,
		MinReshardInterval:      time.Millisecond,
		DiscoveryReloadInterval: 10 * time.Millisecond,
	}, nil, teststorage.NewAppendable(), prometheus.NewRegistry())
	require.NoError(tb, err)
	require.NoError(tb, m.ApplyConfig(loadConfig(tb, "scrape_configs: [{job_name: app}]")))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
	})

	before := heapInUse()
	input := consulLikeTargets()
	withInput := heapInUse()

	discovered <- input
	require.Eventually(tb, func() bool {
		_, pool := m.TargetsActive()["app"]
		return pool && m.Filter().Stats().Discovered == memTargets
	}, 30*time.Second, 5*time.Millisecond)
	after := heapInUse()
	runtime.KeepAlive(input)

	require.Zero(tb, m.Filter().Stats().Owned)
	return (float64(after) - float64(withInput)) / memTargets, (float64(withInput) - float64(before)) / memTargets, m
}

// TestMemoryPerNonOwnedTarget guards the promise that a target owned by a
// peer costs no scrape loop: what the filter keeps for it is a map entry.
func TestMemoryPerNonOwnedTarget(t *testing.T) {
	perTarget, _, _ := measureNonOwned(t)
	t.Logf("heap per non-owned target: %.0f B", perTarget)
	require.LessOrEqual(t, perTarget, float64(maxBytesNonOwned))
}

// BenchmarkFilterNonOwned reports the heap per discovered-but-not-owned target
// and times one re-filter pass over 10,000 targets.
func BenchmarkFilterNonOwned(b *testing.B) {
	perTarget, input, m := measureNonOwned(b)
	f := m.Filter()
	for b.Loop() {
		if _, ok := f.pass(); !ok {
			b.Fatal("no snapshot")
		}
	}
	// After the loop: b.Loop's first call resets user-reported metrics.
	b.ReportMetric(perTarget, "B/non-owned-target")
	b.ReportMetric(input, "B/discovered-target-input")
}

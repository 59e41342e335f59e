package scrape

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
)

// BenchmarkFilterScale is the agent's side of issue 14's cluster scale
// report, at 100,000 and 1,000,000 discovered targets shaped like Consul
// SD's (five labels each, 1,000 instances per service):
//
//   - B/non-owned-target: the heap the filter and Prometheus' scrape
//     manager keep per discovered target another agent owns (the decision,
//     the key in the discovered list), beyond the discovery snapshot;
//   - B/discovered-target-input: the snapshot itself, which Prometheus'
//     discovery manager holds whether or not shoal filters it;
//   - ms-pass-new-snapshot-*: a filter pass over a new discovery snapshot,
//     which relabels and keys every target and asks the owner; with no ring
//     (keys only) and with a ring of 100 and 1,000 members (the agent is
//     one of them). Before the key cache every pass cost this;
//   - ms-pass-member-change-*: the pass after a member joined, which reuses
//     the keys (keycache.go) and only asks the new ring;
//   - ms-targets: Filter.Targets, which the agent's moves log calls after
//     every change that moved something (relabels and sorts every target).
//
// Run with: go test -run '^$' -bench FilterScale -benchtime 1x -timeout 30m ./scrape/
func BenchmarkFilterScale(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			var perTarget, input float64
			var snapshot map[string][]*targetgroup.Group
			for range b.N {
				perTarget, input, snapshot = measureNonOwnedAt(b, n)
			}
			b.ReportMetric(perTarget, "B/non-owned-target")
			b.ReportMetric(input, "B/discovered-target-input")

			cfg := loadConfig(b, "scrape_configs: [{job_name: app}]")
			pass := func(f *Filter) float64 {
				start := time.Now()
				_, ok := f.pass()
				require.True(b, ok)
				require.Equal(b, n, f.Stats().Discovered)
				return float64(time.Since(start).Milliseconds())
			}
			for _, members := range []int{0, 100, 1000} {
				owner := &switchOwner{}
				owner.view.Store(&gossip.View{}) // owns nothing, asks no ring: the keys alone
				name := "keys-only"
				var joined gossip.View
				if members > 0 {
					name = fmt.Sprintf("%dmembers", members)
					ms := make([]ring.Member, members, members+1)
					for i := range ms {
						ms[i] = ring.Member{Name: fmt.Sprintf("shoal-agent-%03d", i)}
					}
					v, err := gossip.NewStaticView(ms[members/2].Name, 1, time.Now(), ms)
					require.NoError(b, err)
					owner.view.Store(&v)
					joined, err = gossip.NewStaticView(ms[members/2].Name, 1, time.Now(), append(ms, ring.Member{Name: "shoal-newcomer"}))
					require.NoError(b, err)
				}
				f, err := NewFilter(FilterOptions{Owner: owner}, nil, nil)
				require.NoError(b, err)
				require.NoError(b, f.ApplyConfig(cfg))
				f.snapshot = snapshot
				// The first pass over a snapshot computes every key, as
				// every pass did before the key cache; the next one, after a
				// member joined, reuses them.
				b.ReportMetric(pass(f), "ms-pass-new-snapshot-"+name)
				if members > 0 {
					owner.view.Store(&joined)
				}
				b.ReportMetric(pass(f), "ms-pass-member-change-"+name)
				if members == 0 {
					start := time.Now()
					require.Len(b, f.Targets(), n)
					b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-targets")
				}
			}
			runtime.KeepAlive(snapshot)
		})
	}
}

// scaleTargets builds n targets with the labels Consul SD sets, 1,000 per
// service (one group each), on 127.0.0.0/8 addresses that nothing scrapes.
func scaleTargets(n int) map[string][]*targetgroup.Group {
	const perGroup = 1000
	groups := make([]*targetgroup.Group, 0, n/perGroup)
	for g := range n / perGroup {
		tg := &targetgroup.Group{
			Source: fmt.Sprintf("svc-%d", g),
			Labels: model.LabelSet{"__meta_consul_service": model.LabelValue(fmt.Sprintf("svc-%d", g)), "__meta_consul_dc": "dc1"},
		}
		for i := range perGroup {
			id := g*perGroup + i
			tg.Targets = append(tg.Targets, model.LabelSet{
				model.AddressLabel:           model.LabelValue(fmt.Sprintf("127.%d.%d.%d:9100", id>>16, (id>>8)&0xff, id&0xff)),
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

// measureNonOwnedAt is measureNonOwned (memory_test.go) at n targets: the
// manager owns none of them and runs no scrape loop.
func measureNonOwnedAt(tb testing.TB, n int) (perTarget, inputPerTarget float64, input map[string][]*targetgroup.Group) {
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
	defer func() {
		cancel()
		require.NoError(tb, <-done)
	}()

	before := heapInUse()
	input = scaleTargets(n)
	withInput := heapInUse()
	discovered <- input
	require.Eventually(tb, func() bool {
		_, pool := m.TargetsActive()["app"]
		return pool && m.Filter().Stats().Discovered == n
	}, 5*time.Minute, 10*time.Millisecond)
	after := heapInUse()
	require.Zero(tb, m.Filter().Stats().Owned)
	return (float64(after) - float64(withInput)) / float64(n), (float64(withInput) - float64(before)) / float64(n), input
}

// switchOwner is an Owner whose view the benchmark replaces, as a
// membership change replaces the agent's.
type switchOwner struct{ view atomic.Pointer[gossip.View] }

func (o *switchOwner) OwnsAt(key uint64, t time.Time) bool { return o.view.Load().OwnsAt(key, t) }
func (o *switchOwner) Changes() []time.Time                { return o.view.Load().Changes() }

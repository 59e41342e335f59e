package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The convergence benchmarks run real memberlist clusters of 10 nodes on
// 127.0.0.1 in this process with the default timers and report latency
// percentiles in milliseconds. Targets (issue 2): join seen by every node
// ≤ 1 s, crash declared dead by every node ≤ 5 s p99, graceful leave seen
// ≤ 1 s, and no false death in 60 s with both cores busy.
//
// Run with: go test -run '^$' -bench Convergence -benchtime 1x ./gossip/

const (
	clusterSize = 10
	trials      = 40
)

func BenchmarkConvergence(b *testing.B) {
	for i := 0; i < b.N; i++ {
		nodes := startCluster(b, clusterSize-1, nil)
		var join, ring, handoff, leave, death []time.Duration
		for trial := 0; trial < trials; trial++ {
			seed := nodes[rand.IntN(len(nodes))]
			name := fmt.Sprintf("extra-%02d", trial)

			start := time.Now()
			extra := startNode(b, name, []string{seed.Addr()}, nil)
			join = append(join, waitAll(b, nodes, func(n *testNode) bool { return hasPeer(n, name) }).Sub(start))
			ring = append(ring, waitAll(b, nodes, func(n *testNode) bool { return n.Ring().Has(name) }).Sub(start))

			if trial%2 == 0 {
				// Graceful: announce leaving (targets move), then leave.
				start = time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := extra.AnnounceLeaving(ctx, time.Now()); err != nil {
					b.Fatal(err)
				}
				cancel()
				handoff = append(handoff, waitAll(b, nodes, func(n *testNode) bool { return !n.Ring().Has(name) }).Sub(start))
				start = time.Now()
				go func() { _ = extra.stop() }()
				leave = append(leave, waitAll(b, nodes, func(n *testNode) bool { return !hasPeer(n, name) }).Sub(start))
			} else {
				start = time.Now()
				extra.kill()
				death = append(death, waitAll(b, nodes, func(n *testNode) bool { return !hasPeer(n, name) }).Sub(start))
			}
			_ = extra.stop()
			// Let the cluster settle so trials do not overlap.
			waitConverged(b, nodes, len(nodes), 30*time.Second)
		}
		report(b, "join-seen", join)
		report(b, "join-in-ring", ring)
		report(b, "leave-handoff", handoff)
		report(b, "leave-seen", leave)
		report(b, "death-seen", death)
		for _, n := range nodes {
			_ = n.stop()
		}
	}
}

// BenchmarkNoFalseDeath runs 10 nodes for 60 s while goroutines keep both
// cores busy, and reports how many members were wrongly declared dead.
func BenchmarkNoFalseDeath(b *testing.B) {
	const run = 60 * time.Second
	for i := 0; i < b.N; i++ {
		nodes := startCluster(b, clusterSize, nil)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < runtime.NumCPU(); c++ {
			wg.Go(func() {
				x := 0
				for {
					select {
					case <-stop:
						return
					default:
						for j := 0; j < 1e5; j++ {
							x += j
						}
					}
				}
			})
		}
		time.Sleep(run)
		close(stop)
		wg.Wait()
		var failures float64
		for _, n := range nodes {
			failures += testutil.ToFloat64(n.metrics.failures)
		}
		b.ReportMetric(failures, "false-deaths")
		b.ReportMetric(run.Seconds(), "seconds")
		for _, n := range nodes {
			_ = n.stop()
		}
	}
}

func hasPeer(n *testNode, name string) bool {
	for _, p := range n.Peers() {
		if p.Name == name {
			return true
		}
	}
	return false
}

// waitAll polls until cond holds on every node and returns when it did.
func waitAll(tb testing.TB, nodes []*testNode, cond func(*testNode) bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for _, n := range nodes {
			if !cond(n) {
				all = false
				break
			}
		}
		if all {
			return time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
	tb.Fatal("condition not reached on every node within 60s")
	return time.Time{}
}

func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	b.ReportMetric(float64(pct(0.5).Milliseconds()), name+"-p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), name+"-p99-ms")
	b.ReportMetric(float64(len(ds)), name+"-trials")
}

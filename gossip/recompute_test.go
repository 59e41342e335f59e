package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// BenchmarkScheduleRecompute1M is what a membership change costs an agent
// in ownership math with a million discovered targets, on 100 and 1,000
// members, while a join is announced a handoff lead ahead (two rings):
//
//   - schedule: rebuilding the Schedule from the member spans (Node.rebuild);
//   - decide: for every target, whether this agent runs its loop, as the
//     filter asks it (scrape.Filter.runs: owned now, or owned at the
//     announced change, a lead ahead);
//   - moved: for every target, its owners in the previous and the new view
//     (View.Moved, what the agent's moves log asks after each change): two
//     full rankings per target.
//
// The target keys' hashing and relabeling are the filter's and are measured
// in scrape (BenchmarkFilterScale). Issue 14's bar: 1 s for 1M targets on
// 100 members.
//
// Run with: go test -run '^$' -bench ScheduleRecompute1M -benchtime 1x ./gossip/
func BenchmarkScheduleRecompute1M(b *testing.B) {
	const targets = 1_000_000
	keys := make([]uint64, targets)
	for i := range keys {
		keys[i] = ring.Key(fmt.Sprintf("node\x00http://10.%d.%d.%d:9100/metrics", i>>16, (i>>8)&0xff, i&0xff))
	}
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			now := time.Now()
			change := now.Add(DefaultHandoffLead)
			spans := make([]span, 0, size+1)
			for i := range size {
				spans = append(spans, span{member: ring.Member{Name: scaleName(i), Weight: 1}})
			}
			self := scaleName(size / 2)
			joined := append(slices.Clone(spans), span{member: ring.Member{Name: "shoal-newcomer", Weight: 1}, from: change})
			prevSched, err := newSchedule(spans, now)
			if err != nil {
				b.Fatal(err)
			}
			prev := newView(prevSched, self, 1, now)

			var build, decide, moved time.Duration
			runs, moves := 0, 0
			for range b.N {
				start := time.Now()
				sched, err := newSchedule(joined, now)
				if err != nil {
					b.Fatal(err)
				}
				build += time.Since(start)
				v := newView(sched, self, 1, now)

				start = time.Now()
				runs = 0
				for _, k := range keys {
					if v.OwnsAt(k, now) || v.OwnsAt(k, change) {
						runs++
					}
				}
				decide += time.Since(start)

				start = time.Now()
				moves = 0
				var from, to []string
				after := v.At(change)
				for _, k := range keys {
					var m bool
					if from, to, m = after.Moved(prev, k, from[:0], to[:0]); m {
						moves++
					}
				}
				moved += time.Since(start)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(build), "ms-schedule")
			b.ReportMetric(per(decide), "ms-decide-1M")
			b.ReportMetric(per(moved), "ms-moved-1M")
			b.ReportMetric(float64(runs), "runs")
			b.ReportMetric(float64(moves), "moves")
		})
	}
}

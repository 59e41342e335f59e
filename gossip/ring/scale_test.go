package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// isOwnerFullScan is IsOwner as it was before the early exit (owner.go):
// the full ranking, then a name comparison. It is the reference of
// TestIsOwnerMatchesFullScan and the old path of BenchmarkRecompute1M.
func (r *Ring) isOwnerFullScan(key uint64, n int, name string) bool {
	if r == nil || n <= 0 || len(r.members) == 0 {
		return false
	}
	if n == 1 {
		return r.members[r.top(key)].name == name
	}
	var stack [maxStackOwners]ranked
	for _, b := range r.ranked(&stack, key, n) {
		if r.members[b.idx].name == name {
			return true
		}
	}
	return false
}

// TestIsOwnerMatchesFullScan: the early exit gives the full ranking's
// answer for every member, replication factor and weighting.
func TestIsOwnerMatchesFullScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{1, 2, 3, 10, 57} {
		for _, weighted := range []bool{false, true} {
			t.Run(fmt.Sprintf("members=%d/weighted=%v", size, weighted), func(t *testing.T) {
				ms := Names(names("agent", size)...)
				if weighted {
					for i := range ms {
						ms[i].Weight = float64(1 + i%4)
					}
				}
				r := MustNew(ms...)
				for range 3000 {
					k := rng.Uint64()
					n := 1 + rng.IntN(6)
					name := ms[rng.IntN(size)].Name
					require.Equal(t, r.isOwnerFullScan(k, n, name), r.IsOwner(k, n, name), "key %d n %d member %s", k, n, name)
					// Several askers on one ring: the cache follows the name.
					other := ms[rng.IntN(size)].Name
					require.Equal(t, r.isOwnerFullScan(k, n, other), r.IsOwner(k, n, other))
				}
				require.False(t, r.IsOwner(1, 1, "not-a-member"))
				require.False(t, r.IsOwner(1, 0, ms[0].Name))
			})
		}
	}
}

// BenchmarkRecompute1M is what an agent's ring math costs when membership
// changes with a million discovered targets: build the ring, then decide
// for every target whether this agent owns it (IsOwner, what the filter
// asks) with the early exit and with the old full scan, and rank its owner
// (Owner, a full scan by nature: what "who owns it" and the moves log ask).
// Issue 14's bar: 1 s for 1M targets on 100 members.
//
// Run with: go test -run '^$' -bench Recompute1M -benchtime 1x ./gossip/ring/
func BenchmarkRecompute1M(b *testing.B) {
	const targets = 1_000_000
	keys := make([]uint64, targets)
	for i := range keys {
		keys[i] = Key(fmt.Sprintf("node\x00http://10.%d.%d.%d:9100/metrics", i>>16, (i>>8)&0xff, i&0xff))
	}
	isOwnerOld := map[int]float64{}
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			ns := names("agent", size)
			self := ns[size/2]
			var build, fast, old, owner time.Duration
			mine, mineOld := 0, 0
			for range b.N {
				start := time.Now()
				r := MustNew(Names(ns...)...)
				build += time.Since(start)

				start = time.Now()
				mine = 0
				for _, k := range keys {
					if r.IsOwner(k, 1, self) {
						mine++
					}
				}
				fast += time.Since(start)

				start = time.Now()
				mineOld = 0
				for _, k := range keys {
					if r.isOwnerFullScan(k, 1, self) {
						mineOld++
					}
				}
				old += time.Since(start)

				start = time.Now()
				var sink string
				for _, k := range keys {
					sink, _ = r.Owner(k)
				}
				owner += time.Since(start)
				_ = sink
			}
			if mine != mineOld {
				b.Fatalf("early exit owns %d keys, the full scan %d", mine, mineOld)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(build), "ms-build")
			b.ReportMetric(per(fast), "ms-isowner-1M")
			b.ReportMetric(per(old), "ms-isowner-1M-fullscan")
			b.ReportMetric(per(old)/per(fast), "fullscan/earlyexit")
			b.ReportMetric(per(owner), "ms-owner-1M")
			b.ReportMetric(float64(mine), "owned")
			isOwnerOld[size] = per(fast)
			if size == 1000 && isOwnerOld[100] > 0 {
				b.ReportMetric(isOwnerOld[1000]/isOwnerOld[100], "isowner-1000/100")
			}
		})
	}
}

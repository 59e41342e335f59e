package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The benchmarks report placement quality with b.ReportMetric next to the
// same figure for the placements shoal replaces, computed in the same run:
//
//   - tokenring: consistent hashing with 512 tokens per member, as in
//     grafana/ckit (Grafana Alloy clustering);
//   - hashmod: key mod N, as Prometheus' hashmod relabeling and vmagent's
//     -promscrape.cluster.* flags do.
//
// Run with: go test -run '^$' -bench . -benchtime 1x ./gossip/ring/

// BenchmarkBalance reports max/mean keys per member (1.0 is perfect).
func BenchmarkBalance(b *testing.B) {
	for _, tc := range []struct{ keys, members int }{
		{1000000, 100},
		{10000, 10},
		{10000, 100},
	} {
		b.Run(fmt.Sprintf("keys=%d/members=%d", tc.keys, tc.members), func(b *testing.B) {
			ns := names("agent", tc.members)
			r := MustNew(Names(ns...)...)
			tr := newTokenRing(ns, 512)
			var hrw, tok float64
			for i := 0; i < b.N; i++ {
				hrw, _ = balance(r, tc.keys, uint64(i+1))
				tok = tokenBalance(tr, ns, tc.keys, uint64(i+1))
			}
			b.ReportMetric(hrw, "max/mean")
			b.ReportMetric(tok, "tokenring-max/mean")
			b.ReportMetric(hrw/tok, "ratio-vs-tokenring")
		})
	}
}

// BenchmarkMovement reports the fraction of keys that change owner when one
// member joins or leaves, divided by the ideal 1/N (1.0 is optimal).
func BenchmarkMovement(b *testing.B) {
	const keys = 200000
	for _, size := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			ns := names("agent", size)
			grown := append(slices.Clone(ns), "newcomer")
			shrunk := ns[1:]
			r, rJoin, rLeave := MustNew(Names(ns...)...), MustNew(Names(grown...)...), MustNew(Names(shrunk...)...)
			var join, leave, hashmodJoin float64
			for i := 0; i < b.N; i++ {
				rng := rand.New(rand.NewPCG(uint64(i), 9))
				var mj, ml, hj int
				for range keys {
					k := rng.Uint64()
					o, _ := r.Owner(k)
					if oj, _ := rJoin.Owner(k); oj != o {
						mj++
					}
					if ol, _ := rLeave.Owner(k); ol != o {
						ml++
					}
					if k%uint64(size) != k%uint64(size+1) {
						hj++
					}
				}
				join = float64(mj) / keys * float64(size+1)
				leave = float64(ml) / keys * float64(size)
				hashmodJoin = float64(hj) / keys * float64(size+1)
			}
			b.ReportMetric(join, "join-moved/ideal")
			b.ReportMetric(leave, "leave-moved/ideal")
			b.ReportMetric(hashmodJoin, "hashmod-join-moved/ideal")
		})
	}
}

// BenchmarkOwner is the per-key lookup cost; the target is ≤ 1 µs and 0
// allocations at 100 members.
func BenchmarkOwner(b *testing.B) {
	for _, size := range []int{10, 100} {
		r := MustNew(Names(names("agent", size)...)...)
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			var sink string
			for i := 0; i < b.N; i++ {
				sink, _ = r.Owner(uint64(i))
			}
			_ = sink
		})
		b.Run(fmt.Sprintf("members=%d/owners=3", size), func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]string, 0, 3)
			for i := 0; i < b.N; i++ {
				dst = r.Owners(dst[:0], uint64(i), 3)
			}
		})
	}
	weighted := make([]Member, 100)
	for i := range weighted {
		weighted[i] = Member{Name: fmt.Sprintf("agent-%d", i), Weight: float64(1 + i%4)}
	}
	r := MustNew(weighted...)
	b.Run("members=100/weighted", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = r.Owner(uint64(i))
		}
	})
}

// BenchmarkRecompute is what a re-shard costs: the owners of 100,000 targets
// on 100 members, including building the ring. The target is ≤ 50 ms.
func BenchmarkRecompute(b *testing.B) {
	const keys = 100000
	ns := names("agent", 100)
	ks := make([]uint64, keys)
	for i := range ks {
		ks[i] = Key(fmt.Sprintf("job\x00http://10.0.%d.%d:9100/metrics", i/250, i%250))
	}
	mine := 0
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r := MustNew(Names(ns...)...)
		mine = 0
		for _, k := range ks {
			if r.IsOwner(k, 1, "agent-7") {
				mine++
			}
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/100k-keys")
	_ = mine
}

// tokenRing is consistent hashing with virtual nodes, the comparison peer.
type tokenRing struct {
	tokens []uint64
	owner  map[uint64]string
}

func newTokenRing(members []string, perMember int) *tokenRing {
	t := &tokenRing{owner: map[uint64]string{}}
	for _, m := range members {
		for i := 0; i < perMember; i++ {
			tok := xxhash.Sum64String(fmt.Sprintf("%s-%d", m, i))
			t.tokens = append(t.tokens, tok)
			t.owner[tok] = m
		}
	}
	slices.Sort(t.tokens)
	return t
}

func (t *tokenRing) get(key uint64) string {
	k := mix(key)
	i := sort.Search(len(t.tokens), func(i int) bool { return t.tokens[i] >= k })
	if i == len(t.tokens) {
		i = 0
	}
	return t.owner[t.tokens[i]]
}

func tokenBalance(t *tokenRing, members []string, n int, seed uint64) float64 {
	counts := map[string]int{}
	rng := rand.New(rand.NewPCG(seed, seed))
	for range n {
		counts[t.get(rng.Uint64())]++
	}
	hi := 0
	for _, m := range members {
		hi = max(hi, counts[m])
	}
	return float64(hi) / (float64(n) / float64(len(members)))
}

// Package ring places 64-bit keys on a set of members so that every process
// that knows the same members computes the same owners, with no coordination.
//
// The algorithm is rendezvous hashing (highest random weight, Thaler and
// Ravishankar 1996): every (key, member) pair gets a pseudo-random score and
// the members with the highest scores own the key. It was chosen over a token
// ring (consistent hashing with virtual nodes, as used by Grafana Alloy's ckit
// with 512 tokens per member) because:
//
//   - balance: each key is an independent draw, so the load of a member is a
//     binomial variable; max/mean is 1.02-1.03 for 1M keys on 100 members,
//     against about 1.12 for 512 tokens per member;
//   - movement is minimal by construction: when a member joins it takes
//     exactly the keys for which it scores highest (1/N of them on average)
//     and every other key stays; when a member leaves only its own keys move,
//     each to the member that ranked second for it. A key never moves between
//     two members that both stay;
//   - replication falls out of the same order: the top n scores are the n
//     owners, and removing one owner promotes exactly the (n+1)-th;
//   - there is no state to build or gossip: a ring is a sorted list of
//     members, rebuilt in microseconds when membership changes.
//
// The price is O(N) work per lookup instead of O(log N). With a multiply-xor
// mixer that is about 2 ns per member, so 100 members cost well under 1 µs
// per key, which is far below what a scrape costs. Asking whether one
// member owns a key (IsOwner, what an agent asks for every target) stops at
// the first member that outranks it, which is ln N members on average.
//
// Members may carry weights (for agents of different sizes). Weighted
// rendezvous uses the logarithmic method of Schindelhauer and Schomaker
// (score = -weight / ln(u)), which keeps every property above; it calls
// math.Log per member and is therefore only used when weights differ.
//
// The package is pure: it depends on the standard library and xxhash only,
// and knows nothing about memberlist or Prometheus.
package ring

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Member is one participant of the ring.
type Member struct {
	// Name identifies the member; names are unique within a ring.
	Name string
	// Weight scales the share of keys the member owns relative to the
	// others. Zero means the default weight of 1.
	Weight float64
}

// MaxWeight bounds member weights so that a typo (10000 instead of 1) cannot
// send every key to one member. Ratios beyond 100:1 between agents of one
// fleet are not a sizing anyone should rely on.
const MaxWeight = 100

// ErrDuplicate is returned by New when two members share a name.
var ErrDuplicate = errors.New("duplicate member name")

type member struct {
	name   string
	seed   uint64  // hash of the name, mixed with each key
	weight float64 // effective weight, > 0
}

// Ring is an immutable placement of keys onto members. The zero value and a
// Ring with no members own nothing. A Ring is safe for concurrent use.
type Ring struct {
	members  []member // sorted by name, so the order never depends on the caller
	seeds    []uint64 // members[i].seed, contiguous for the unweighted lookup loop
	weighted bool     // some weights differ: use the logarithmic scores
	digest   uint64
	last     atomic.Pointer[position] // the member IsOwner was last asked about (owner.go)
}

// New returns a ring over members. Names must be non-empty and unique and
// weights must be 0 (meaning 1) or in (0, MaxWeight]. The order of members
// does not matter.
func New(members []Member) (*Ring, error) {
	r := &Ring{members: make([]member, 0, len(members))}
	for i, m := range members {
		if m.Name == "" {
			return nil, fmt.Errorf("member %d: name must not be empty", i)
		}
		w := m.Weight
		if w == 0 {
			w = 1
		}
		if math.IsNaN(w) || w < 0 || w > MaxWeight {
			return nil, fmt.Errorf("member %q: weight must be 0 (default 1) or in (0, %d], got %v", m.Name, MaxWeight, m.Weight)
		}
		r.members = append(r.members, member{name: m.Name, seed: xxhash.Sum64String(m.Name), weight: w})
	}
	slices.SortFunc(r.members, func(a, b member) int { return cmp.Compare(a.name, b.name) })
	for i := 1; i < len(r.members); i++ {
		if r.members[i].name == r.members[i-1].name {
			return nil, fmt.Errorf("member %q: %w", r.members[i].name, ErrDuplicate)
		}
	}
	for i := 1; i < len(r.members); i++ {
		if r.members[i].weight != r.members[0].weight {
			r.weighted = true
			break
		}
	}
	r.seeds = make([]uint64, len(r.members))
	for i, m := range r.members {
		r.seeds[i] = m.seed
	}
	r.digest = digest(r.members)
	return r, nil
}

// MustNew is New for tests and examples: it panics on invalid members.
func MustNew(members ...Member) *Ring {
	r, err := New(members)
	if err != nil {
		panic(err)
	}
	return r
}

// Names is a convenience that builds members of equal weight.
func Names(names ...string) []Member {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{Name: n}
	}
	return ms
}

// digest hashes the member set (names and weights, in name order) so that two
// processes can tell cheaply whether they compute the same placement.
func digest(ms []member) uint64 {
	h := xxhash.New()
	var buf [8]byte
	for _, m := range ms {
		_, _ = h.WriteString(m.name)
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(m.weight))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(buf[:])
	}
	return h.Sum64()
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Members returns the member names in sorted order.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	names := make([]string, len(r.members))
	for i, m := range r.members {
		names[i] = m.name
	}
	return names
}

// Has reports whether name is a member.
func (r *Ring) Has(name string) bool {
	if r == nil {
		return false
	}
	_, ok := slices.BinarySearchFunc(r.members, name, func(m member, n string) int { return cmp.Compare(m.name, n) })
	return ok
}

// Digest identifies the member set and weights: two rings with the same
// Digest place every key identically.
func (r *Ring) Digest() uint64 {
	if r == nil {
		return digest(nil)
	}
	return r.digest
}

// Owner returns the member that owns key, or false if the ring is empty.
// It does not allocate.
func (r *Ring) Owner(key uint64) (string, bool) {
	i := r.top(key)
	if i < 0 {
		return "", false
	}
	return r.members[i].name, true
}

// OwnerIndex returns the index in Members() of the member that owns key, or
// -1 if the ring is empty: Owner without the name, for callers that keep
// per-member state in slices (the load-aware planner).
func (r *Ring) OwnerIndex(key uint64) int { return r.top(key) }

// Owners appends the n owners of key to dst, best first, and returns the
// extended slice. n is capped at Len(). It does not allocate when dst has
// room for the owners and n is at most maxStackOwners.
func (r *Ring) Owners(dst []string, key uint64, n int) []string {
	if r == nil || n <= 0 || len(r.members) == 0 {
		return dst
	}
	if n == 1 {
		return append(dst, r.members[r.top(key)].name)
	}
	var stack [maxStackOwners]ranked
	for _, b := range r.ranked(&stack, key, n) {
		dst = append(dst, r.members[b.idx].name)
	}
	return dst
}

// IsOwner reports whether name is among the n owners of key. It does not
// allocate, and it stops at the n-th member that outranks name, so for the
// keys name does not own it scores about ln(Len()) members instead of all
// of them (see outranked).
func (r *Ring) IsOwner(key uint64, n int, name string) bool {
	if r == nil || n <= 0 || len(r.members) == 0 {
		return false
	}
	self, ok := r.index(name)
	if !ok {
		return false
	}
	return r.outranked(key, self, n) < n
}

// maxStackOwners is the largest replication factor served without a heap
// allocation; agents run with 1-5 replicas.
const maxStackOwners = 8

type ranked struct {
	score float64 // used when weighted
	hash  uint64  // used when unweighted
	idx   int
}

// top returns the index of the highest-scoring member for key, or -1.
func (r *Ring) top(key uint64) int {
	if r == nil || len(r.members) == 0 {
		return -1
	}
	k := mix(key)
	best := 0
	if !r.weighted {
		var bestH uint64
		for i, seed := range r.seeds {
			// Ties (probability 2^-64) go to the lower index, i.e. the smaller
			// name, which is the same on every process.
			if h := mix(k ^ seed); h > bestH || i == 0 {
				best, bestH = i, h
			}
		}
		return best
	}
	bestS := weightedScore(mix(k^r.members[0].seed), r.members[0].weight)
	for i := 1; i < len(r.members); i++ {
		if s := weightedScore(mix(k^r.members[i].seed), r.members[i].weight); s > bestS {
			best, bestS = i, s
		}
	}
	return best
}

// ranked returns the min(n, Len()) best members for key, in stack when they
// fit (the caller's array stays on its stack) and on the heap otherwise.
func (r *Ring) ranked(stack *[maxStackOwners]ranked, key uint64, n int) []ranked {
	n = min(n, len(r.members))
	if n <= maxStackOwners {
		return r.topN(stack[:0], key, n)
	}
	return r.topN(make([]ranked, 0, n), key, n)
}

// topN fills best (len 0, cap >= n) with the n highest-scoring members in
// descending order, using insertion into a short sorted list.
func (r *Ring) topN(best []ranked, key uint64, n int) []ranked {
	k := mix(key)
	for i, m := range r.members {
		h := mix(k ^ m.seed)
		c := ranked{hash: h, idx: i}
		if r.weighted {
			c.score = weightedScore(h, m.weight)
		}
		if len(best) == n && !r.better(c, best[n-1]) {
			continue
		}
		if len(best) < n {
			best = append(best, c)
		} else {
			best[n-1] = c
		}
		for j := len(best) - 1; j > 0 && r.better(best[j], best[j-1]); j-- {
			best[j], best[j-1] = best[j-1], best[j]
		}
	}
	return best
}

// better orders candidates by score, ties to the lower index as in top.
func (r *Ring) better(a, b ranked) bool {
	if r.weighted {
		if a.score != b.score {
			return a.score > b.score
		}
	} else if a.hash != b.hash {
		return a.hash > b.hash
	}
	return a.idx < b.idx
}

// weightedScore maps a uniform hash to -w/ln(u), u in (0,1): the member with
// the highest score wins with probability w_i / sum(w).
func weightedScore(h uint64, w float64) float64 {
	// 53 random bits, offset by half a step so that u is never 0 or 1.
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}

// mix is the 64-bit finalizer of MurmurHash3 (fmix64): a bijection whose
// output bits each depend on every input bit. Keys are mixed once and then
// mixed again with each member's seed, so even sequential keys and similar
// member names give independent scores.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Key hashes a string (for example a target's job and URL) into a ring key.
func Key(s string) uint64 { return xxhash.Sum64String(s) }

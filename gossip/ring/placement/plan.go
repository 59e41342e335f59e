package placement

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// Reason says why a plan places a target off its rendezvous owner.
type Reason uint8

// Reasons, as carried in the encoding (two bits).
const (
	// ReasonBalance: the target's rendezvous owner was above the bound.
	ReasonBalance Reason = 1
	// ReasonOversized: the target is larger than a fair share and sits alone.
	// It is recorded even on its rendezvous owner, so that it keeps its member
	// when another member joins.
	ReasonOversized Reason = 2
	// ReasonDisplaced: the target's rendezvous owner holds an oversized target.
	ReasonDisplaced Reason = 3
)

// String returns the reason's name, as the page and the API show it.
func (r Reason) String() string {
	switch r {
	case ReasonBalance:
		return "balance"
	case ReasonOversized:
		return "oversized"
	case ReasonDisplaced:
		return "displaced"
	}
	return "unknown"
}

// Override places one target on a member instead of its rendezvous owner.
type Override struct {
	Key    uint64
	Member string
	Reason Reason
}

// Plan is an immutable list of overrides of the rendezvous placement,
// computed for one ring (RingDigest). The nil *Plan and the empty plan place
// every key by plain rendezvous. A Plan is safe for concurrent use.
type Plan struct {
	ringDigest uint64
	members    []string   // sorted names the overrides refer to
	overrides  []override // sorted by key, unique
	encoded    []byte     // canonical encoding (encode.go)
	digest     uint64
}

type override struct {
	key    uint64
	member int32 // index in members
	reason Reason
}

// newPlan builds a plan from overrides with unique keys, in any order.
func newPlan(ringDigest uint64, os []Override) *Plan {
	p := &Plan{ringDigest: ringDigest, overrides: make([]override, 0, len(os))}
	for _, o := range os {
		p.members = append(p.members, o.Member)
	}
	slices.Sort(p.members)
	p.members = slices.Compact(p.members)
	for _, o := range os {
		i, _ := slices.BinarySearch(p.members, o.Member)
		p.overrides = append(p.overrides, override{key: o.Key, member: int32(i), reason: o.Reason})
	}
	slices.SortFunc(p.overrides, func(a, b override) int { return cmp.Compare(a.key, b.key) })
	p.seal()
	return p
}

// seal computes the encoding and the digest.
func (p *Plan) seal() {
	p.encoded = p.appendBinary(nil)
	p.digest = xxhash.Sum64(p.encoded)
}

// Digest identifies the plan (its ring digest and every override): two plans
// with the same Digest place every key alike on the same ring. It is the
// plan's version for agreement checks.
func (p *Plan) Digest() uint64 {
	if p == nil {
		return empty.digest
	}
	return p.digest
}

// RingDigest is the digest of the ring (ring.Ring.Digest) the plan was
// computed for. On another ring the plan still places every key (Owner), but
// it was not made for it.
func (p *Plan) RingDigest() uint64 {
	if p == nil {
		return 0
	}
	return p.ringDigest
}

// Len returns the number of overrides.
func (p *Plan) Len() int {
	if p == nil {
		return 0
	}
	return len(p.overrides)
}

// Size returns the length in bytes of the plan's encoding (MarshalBinary):
// what carrying it over gossip costs.
func (p *Plan) Size() int { return len(p.enc()) }

func (p *Plan) enc() []byte {
	if p == nil {
		return empty.encoded
	}
	return p.encoded
}

// Overrides returns a copy of the overrides, sorted by key.
func (p *Plan) Overrides() []Override {
	out := make([]Override, p.Len())
	for i := range out {
		out[i] = p.at(i)
	}
	return out
}

func (p *Plan) at(i int) Override {
	o := p.overrides[i]
	return Override{Key: o.key, Member: p.members[o.member], Reason: o.reason}
}

// Lookup returns the override for key, if the plan has one.
func (p *Plan) Lookup(key uint64) (Override, bool) {
	if p == nil {
		return Override{}, false
	}
	i, ok := slices.BinarySearchFunc(p.overrides, key, func(o override, k uint64) int { return cmp.Compare(o.key, k) })
	if !ok {
		return Override{}, false
	}
	return p.at(i), true
}

// Owner returns the member that owns key on r: the plan's override when its
// member is in r, the rendezvous owner otherwise (targets the plan does not
// know, and overrides to members that have left). False if r is empty. It
// does not allocate.
func (p *Plan) Owner(r *ring.Ring, key uint64) (string, bool) {
	if m, ok := p.member(r, key); ok {
		return m, true
	}
	return r.Owner(key)
}

// Owners appends the n owners of key on r to dst, best first: the plan's
// override, then the rendezvous owners without it. With replication the plan
// moves the first owner only; the other replicas stay where rendezvous puts
// them. It does not allocate when dst has room for n names.
func (p *Plan) Owners(dst []string, r *ring.Ring, key uint64, n int) []string {
	m, ok := p.member(r, key)
	if !ok || n <= 0 {
		return r.Owners(dst, key, n)
	}
	start := len(dst)
	dst = r.Owners(dst, key, n)
	if i := slices.Index(dst[start:], m); i >= 0 {
		// Rotate the override to the front, keeping the others' order.
		copy(dst[start+1:start+i+1], dst[start:start+i])
		dst[start] = m
		return dst
	}
	// Not among the first n: it takes the first place, the last one drops.
	copy(dst[start+1:], dst[start:len(dst)-1])
	dst[start] = m
	return dst
}

// IsOwner reports whether name is among the n owners of key on r.
func (p *Plan) IsOwner(r *ring.Ring, key uint64, n int, name string) bool {
	m, ok := p.member(r, key)
	if !ok {
		return r.IsOwner(key, n, name)
	}
	if m == name {
		return n > 0
	}
	var stack [8]string
	return slices.Contains(p.Owners(stack[:0], r, key, n), name)
}

// member returns the override member of key when it is in r.
func (p *Plan) member(r *ring.Ring, key uint64) (string, bool) {
	if p == nil || len(p.overrides) == 0 {
		return "", false
	}
	i, ok := slices.BinarySearchFunc(p.overrides, key, func(o override, k uint64) int { return cmp.Compare(o.key, k) })
	if !ok {
		return "", false
	}
	m := p.members[p.overrides[i].member]
	if !r.Has(m) {
		return "", false
	}
	return m, true
}

// empty is the plan without overrides, for the nil *Plan.
var empty = newPlan(0, nil)

package gossip

import (
	"encoding/binary"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
)

// Placement is who owns keys during one interval of a Schedule: the ring of
// the members that own keys then and the load-aware plan in force (nil:
// plain rendezvous). It is a small immutable value.
type Placement struct {
	r      *ring.Ring
	p      *placement.Plan
	digest uint64
}

// NewPlacement returns the placement of keys on r under plan p (nil: plain
// rendezvous), for tests and tools; a Schedule makes its own.
func NewPlacement(r *ring.Ring, p *placement.Plan) Placement { return newPlacement(r, p) }

func newPlacement(r *ring.Ring, p *placement.Plan) Placement {
	if p.Len() == 0 {
		// Without overrides the plan places every key like the ring: the
		// digest stays the ring's, so agents without plans agree with it.
		return Placement{r: r, digest: r.Digest()}
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], r.Digest())
	binary.LittleEndian.PutUint64(b[8:], p.Digest())
	return Placement{r: r, p: p, digest: xxhash.Sum64(b[:])}
}

// Ring returns the members' ring.
func (pl Placement) Ring() *ring.Ring { return pl.r }

// Plan returns the plan in force, nil for plain rendezvous.
func (pl Placement) Plan() *placement.Plan { return pl.p }

// Digest identifies the placement: equal digests place every key alike.
// Without a plan it is the ring's digest.
func (pl Placement) Digest() uint64 { return pl.digest }

// Len returns the number of members.
func (pl Placement) Len() int { return pl.r.Len() }

// Has reports whether name is a member.
func (pl Placement) Has(name string) bool { return pl.r.Has(name) }

// Owners appends the n owners of key to dst, best first: the plan's
// override, then the rendezvous owners. It does not allocate when dst has
// room.
func (pl Placement) Owners(dst []string, key uint64, n int) []string {
	return pl.p.Owners(dst, pl.r, key, n)
}

// IsOwner reports whether name is one of the n owners of key.
func (pl Placement) IsOwner(key uint64, n int, name string) bool {
	return pl.p.IsOwner(pl.r, key, n, name)
}

// Planned reports whether the plan, rather than the ring, places key: it
// overrides the key's rendezvous owner with a member of the ring.
func (pl Placement) Planned(key uint64) bool {
	o, ok := pl.p.Lookup(key)
	if !ok || !pl.r.Has(o.Member) {
		return false
	}
	h, _ := pl.r.Owner(key)
	return h != o.Member
}

// planSpan is a plan in force from an instant (zero: since ever) until the
// next one's.
type planSpan struct {
	from time.Time
	plan *placement.Plan
}

// foldPlans drops the plans replaced before horizon and makes the one in
// force at horizon hold since ever, like the ring's history. plans are
// oldest first.
func foldPlans(plans []planSpan, horizon time.Time) []planSpan {
	if len(plans) == 0 {
		return nil
	}
	first := 0
	for i, p := range plans {
		if p.from.IsZero() || !p.from.After(horizon) {
			first = i
		}
	}
	out := append([]planSpan(nil), plans[first:]...)
	if !out[0].from.After(horizon) {
		out[0].from = time.Time{}
	}
	return out
}

// planAt returns the plan in force at instant at (ever: before any
// announced instant), nil for none.
func planAt(plans []planSpan, at time.Time, ever bool) *placement.Plan {
	var p *placement.Plan
	for _, s := range plans {
		if s.from.IsZero() || !ever && !s.from.After(at) {
			p = s.plan
		}
	}
	return p
}

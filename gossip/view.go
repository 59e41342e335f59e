package gossip

import (
	"slices"
	"sort"
	"time"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// View is a read-only picture of ownership over time as this node knows it
// at one instant: the ring schedule, this node's name and the replication
// factor. It answers who owns a key at the view's instant ("now") and at any
// other instant, which changes are announced ahead, and what moved since an
// earlier view. Code outside gossip asks a View instead of doing ring math.
//
// A View is a small immutable value; copy it freely. Its methods are safe for
// concurrent use. The zero View owns nothing.
type View struct {
	sched *Schedule
	self  string
	rf    int
	at    time.Time
}

// View returns the ownership view as of now. It does not allocate.
func (n *Node) View() View {
	return View{sched: n.sched.Load(), self: n.cfg.Name, rf: n.cfg.ReplicationFactor, at: n.now()}
}

// newView is View over sched for tests and for Node.
func newView(sched *Schedule, self string, rf int, at time.Time) View {
	return View{sched: sched, self: self, rf: rf, at: at}
}

// schedule is the view's schedule; the zero View has the empty one.
func (v View) schedule() *Schedule {
	if v.sched == nil {
		return emptySchedule
	}
	return v.sched
}

// Self returns the name of the node the view belongs to.
func (v View) Self() string { return v.self }

// ReplicationFactor returns how many members own each key.
func (v View) ReplicationFactor() int { return v.rf }

// Time returns the instant the view stands for: what "now" means in Owners,
// Owns, Ahead, Digest and Size.
func (v View) Time() time.Time { return v.at }

// At returns the same schedule seen at instant t.
func (v View) At(t time.Time) View {
	v.at = t
	return v
}

// Owners appends the owners of key at the view's instant to dst, best first.
func (v View) Owners(dst []string, key uint64) []string { return v.OwnersAt(dst, key, v.at) }

// OwnersAt appends the owners of key at instant t to dst, best first. It does
// not allocate when dst has room.
func (v View) OwnersAt(dst []string, key uint64, t time.Time) []string {
	return v.schedule().PlacementAt(t).Owners(dst, key, v.rf)
}

// FinalOwners appends to dst the owners of key once every announced change
// has taken effect, e.g. who takes over a leaving node's keys.
func (v View) FinalOwners(dst []string, key uint64) []string {
	return v.schedule().FinalPlacement().Owners(dst, key, v.rf)
}

// Owns reports whether this node owns key at the view's instant.
func (v View) Owns(key uint64) bool { return v.OwnsAt(key, v.at) }

// OwnsAt reports whether this node is one of the owners of key at instant t,
// which may be in the past (a scrape's slot) or in the future (an announced
// change). A node that has not joined owns nothing. It does not allocate.
func (v View) OwnsAt(key uint64, t time.Time) bool {
	return v.schedule().PlacementAt(t).IsOwner(key, v.rf, v.self)
}

// Changes returns the instants at which ownership changes, oldest first: the
// recent past ones (a few minutes) and those announced ahead.
func (v View) Changes() []time.Time { return v.schedule().Changes() }

// Ahead returns the changes announced after the view's instant, oldest first.
func (v View) Ahead() []time.Time {
	cs := v.schedule().Changes()
	i := sort.Search(len(cs), func(i int) bool { return cs[i].After(v.at) })
	return slices.Clone(cs[i:])
}

// Digest identifies the placement at the view's instant: two views with the
// same Digest place every key on the same members.
func (v View) Digest() uint64 { return v.ring().Digest() }

// FinalDigest is Digest once every announced change has taken effect; it is
// what members advertise to check that they agree.
func (v View) FinalDigest() uint64 { return v.schedule().FinalPlacement().Digest() }

// Size returns the number of members owning keys at the view's instant.
func (v View) Size() int { return v.ring().Len() }

func (v View) ring() Placement { return v.schedule().PlacementAt(v.at) }

// Placement returns the ring and the plan in effect at the view's instant.
func (v View) Placement() Placement { return v.ring() }

// Same reports whether v and prev answer every question alike: the same
// schedule, seen at instants with the same placement. Views that are not the
// same may still place every key alike (only a future change was announced).
func (v View) Same(prev View) bool {
	return v.schedule().Digest() == prev.schedule().Digest() && v.Digest() == prev.Digest() && v.rf == prev.rf
}

// Moved appends to from and to the owners of key in prev (at its instant) and
// in v (at its instant) and reports whether they differ: whether key moved
// between the two views. It does not allocate when from and to have room.
func (v View) Moved(prev View, key uint64, from, to []string) (f, t []string, moved bool) {
	from = prev.Owners(from, key)
	to = v.Owners(to, key)
	return from, to, !slices.Equal(from, to)
}

// NewStaticView returns the view, seen by self at instant at, of a cluster
// whose members own keys since ever with no change announced: for tests and
// tools that need a View without running a Node.
func NewStaticView(self string, rf int, at time.Time, members []ring.Member) (View, error) {
	spans := make([]span, len(members))
	for i, m := range members {
		spans[i] = span{member: m}
	}
	s, err := newSchedule(spans, at)
	if err != nil {
		return View{}, err
	}
	return newView(s, self, rf, at), nil
}

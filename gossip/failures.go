package gossip

import (
	"slices"
	"time"
)

// Failure is a member that disappeared without announcing that it was
// leaving (a crash, SIGKILL, an out-of-memory kill, a lost host), as this
// node learned of it. It remembers the ownership just before the member was
// removed, so that a consumer can ask which keys the member was scraping
// when it died (see Owned): that is what the agent's quarantine of targets
// that kill their owner counts.
type Failure struct {
	// Member is the failed member's name.
	Member string
	// At is when this node learned of the failure, by its clock.
	At time.Time
	// Agreed is true when the member's last advertised ring digest was this
	// node's: it computed the same placement, so it owned (and scraped) the
	// keys Owned names. A member that disagreed, for example one that had
	// not yet heard of an earlier failure because it was cut off with it by
	// a partition, may not have been scraping keys this node's ring gave it.
	Agreed bool
	// InFlight are the targets the member advertised, last, that it had
	// been scraping for a while: when it died of one of them (a body that
	// exhausted its memory), they single it out among all it owned.
	InFlight []uint64

	sched *Schedule
	rf    int
}

// Owned reports whether the failed member was one of the owners of key when
// it failed, in this node's ring. It does not allocate.
func (f Failure) Owned(key uint64) bool {
	if f.sched == nil {
		return false
	}
	return f.sched.PlacementAt(f.At).IsOwner(key, f.rf, f.Member)
}

// Failures kept: enough for every decision the agent bases on them (a window
// of minutes, back-offs of up to hours); a fleet where more members fail
// within a day has other problems, and the oldest are dropped first.
const (
	maxFailures    = 64
	failureHistory = 24 * time.Hour
)

// Failures returns the members that failed while they owned keys in the last
// day (at most maxFailures), oldest first. Failures are recorded before the
// ring without the member takes effect, so a caller that sees the new ring
// also sees the failure. The result is a copy; it is safe for concurrent use.
func (n *Node) Failures() []Failure {
	p := n.failures.Load()
	if p == nil {
		return nil
	}
	return slices.Clone(*p)
}

// FailuresVersion changes whenever Failures does: callers cache what they
// derive from the failures under it.
func (n *Node) FailuresVersion() uint64 { return n.failuresVersion.Load() }

// recordFailure remembers that name failed at now with its last advertised
// ring digest. It is called from memberlist's callbacks, before the member
// is dropped from the ring; it does not block. A member that owned no key in
// the ring in effect (joining, or unknown) is not recorded.
func (n *Node) recordFailure(name string, digest uint64, inFlight []uint64, now time.Time) {
	sched := n.sched.Load()
	if sched == nil || !sched.At(now).Has(name) {
		return
	}
	f := Failure{Member: name, At: now, Agreed: digest != 0 && digest == sched.FinalPlacement().Digest(), InFlight: inFlight, sched: sched, rf: n.cfg.ReplicationFactor}
	n.failuresMu.Lock()
	defer n.failuresMu.Unlock()
	var prev []Failure
	if p := n.failures.Load(); p != nil {
		prev = *p
	}
	out := make([]Failure, 0, min(len(prev)+1, maxFailures))
	for _, x := range prev {
		if x.At.After(now.Add(-failureHistory)) {
			out = append(out, x)
		}
	}
	out = append(out, f)
	if len(out) > maxFailures {
		out = out[len(out)-maxFailures:]
	}
	n.failures.Store(&out)
	n.failuresVersion.Add(1)
	n.logger.Info("member failed without leaving", "member", name, "agreed_on_ring", f.Agreed, "scrapes_in_flight", len(inFlight))
}

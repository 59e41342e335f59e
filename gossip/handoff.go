package gossip

import (
	"sort"
	"time"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// HandedOverFrom names the member that owned key before the latest change
// of its owner in (slot-within, slot], and the instant of that change, when
// that member is not this node: the agent that scraped the target until
// this node took it over. The delivery queue uses it to send this node's
// first samples of the target only after that member has delivered its last
// ones (a strict receiver refuses an older sample after a newer one). It
// returns "" when the key did not change owner in the window, when this
// node owned it before the change, and when several members own each key
// (their samples are not one series). It does not allocate.
func (v View) HandedOverFrom(key uint64, slot time.Time, within time.Duration) (from string, at time.Time) {
	if v.rf != 1 || within <= 0 {
		return "", time.Time{}
	}
	s := v.schedule()
	// starts[i] is the instant rings[i] takes effect; look at the changes
	// in the window, newest first.
	hi := sort.Search(len(s.starts), func(i int) bool { return s.starts[i].After(slot) })
	var before, after [1]string
	for i := hi - 1; i >= 1 && s.starts[i].After(slot.Add(-within)); i-- {
		was := s.places[i-1].Owners(before[:0], key, 1)
		now := s.places[i].Owners(after[:0], key, 1)
		if len(was) == len(now) && (len(was) == 0 || was[0] == now[0]) {
			continue // this change did not move the key
		}
		if len(was) == 0 || was[0] == v.self {
			return "", time.Time{}
		}
		return was[0], s.starts[i]
	}
	return "", time.Time{}
}

// HandedOverFrom is View().HandedOverFrom, and also names the owner a
// schedule replaced in (slot-within, now] gave the key at slot: a member
// that crashed leaves the ring "since ever", so the current schedule does
// not show that it owned the key until it was declared dead.
func (n *Node) HandedOverFrom(key uint64, slot time.Time, within time.Duration) (string, time.Time) {
	v := n.View()
	if from, at := v.HandedOverFrom(key, slot, within); from != "" || v.rf != 1 || within <= 0 {
		return from, at
	}
	rs := n.replaced.Load()
	if rs == nil {
		return "", time.Time{}
	}
	var buf [1]string
	for _, r := range *rs {
		if !r.at.After(slot.Add(-within)) {
			break
		}
		was := r.sched.PlacementAt(slot).Owners(buf[:0], key, 1)
		if len(was) == 0 {
			continue
		}
		if was[0] == v.self {
			return "", time.Time{}
		}
		if !r.members.Has(was[0]) {
			// It left the ring with this replacement: it is the agent
			// that scraped the key last.
			return was[0], r.at
		}
	}
	return "", time.Time{}
}

// replacedSchedule is a schedule and when it was replaced; members is the
// ring that replaced it, in its final form.
type replacedSchedule struct {
	at      time.Time
	sched   *Schedule
	members *ring.Ring
}

// maxReplaced bounds the schedules kept for HandedOverFrom.
const maxReplaced = 16

// rememberReplaced records that old was replaced by next at now, keeping
// those of the last scheduleHistory.
func (n *Node) rememberReplaced(old, next *Schedule, now time.Time) {
	if old == nil {
		return
	}
	var prev []replacedSchedule
	if p := n.replaced.Load(); p != nil {
		prev = *p
	}
	rs := make([]replacedSchedule, 0, min(len(prev)+1, maxReplaced))
	rs = append(rs, replacedSchedule{at: now, sched: old, members: next.Final()})
	for _, r := range prev {
		if len(rs) == maxReplaced || r.at.Before(now.Add(-scheduleHistory)) {
			break
		}
		rs = append(rs, r)
	}
	n.replaced.Store(&rs)
}

package gossip

import (
	"sort"
	"time"
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
		was := s.rings[i-1].Owners(before[:0], key, 1)
		now := s.rings[i].Owners(after[:0], key, 1)
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

// HandedOverFrom is View().HandedOverFrom.
func (n *Node) HandedOverFrom(key uint64, slot time.Time, within time.Duration) (string, time.Time) {
	return n.View().HandedOverFrom(key, slot, within)
}

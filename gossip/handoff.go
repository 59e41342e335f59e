package gossip

import (
	"sort"
	"time"
)

// HandedOverFrom names the member that owned key one interval before slot
// when ownership changed between the two instants and that member is not
// this node: the agent that scraped the target's previous slot. The
// delivery queue uses it to send this node's first samples of the target
// only after that member has delivered its last ones (a strict receiver
// refuses an older sample after a newer one). It returns "" when nothing
// changed, when this node owned the key before too, and when several
// members own each key (their samples are not one series). It does not
// allocate.
func (v View) HandedOverFrom(key uint64, slot time.Time, interval time.Duration) string {
	if v.rf != 1 || interval <= 0 {
		return ""
	}
	prev := slot.Add(-interval)
	s := v.schedule()
	if !s.changedBetween(prev, slot) {
		return ""
	}
	var buf [1]string
	owners := s.At(prev).Owners(buf[:0], key, 1)
	if len(owners) == 0 || owners[0] == v.self {
		return ""
	}
	return owners[0]
}

// HandedOverFrom is View().HandedOverFrom.
func (n *Node) HandedOverFrom(key uint64, slot time.Time, interval time.Duration) string {
	return n.View().HandedOverFrom(key, slot, interval)
}

// changedBetween reports whether a ring takes effect in (from, to].
func (s *Schedule) changedBetween(from, to time.Time) bool {
	i := sort.Search(len(s.starts), func(i int) bool { return s.starts[i].After(from) })
	return i < len(s.starts) && !s.starts[i].After(to)
}

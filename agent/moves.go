package agent

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/scrape"
)

// moveLogSize is how many recent ownership moves the status page keeps: a
// scale event of a few hundred targets fits, and memory stays bounded.
const moveLogSize = 500

// Move is one target changing owner, as computed locally from two rings.
type Move struct {
	Time   time.Time `json:"time"`
	Job    string    `json:"job"`
	URL    string    `json:"url"`
	From   []string  `json:"from"`
	To     []string  `json:"to"`
	Reason string    `json:"reason"`
}

// moveLog records the targets whose owners change with each membership
// change, and why, for the status page and the API.
type moveLog struct {
	mu     sync.Mutex
	moves  []Move // ring buffer, oldest first once full
	next   int
	total  uint64
	prev   *ring.Ring
	states map[string]gossip.State
}

func newMoveLog(size int) *moveLog {
	return &moveLog{moves: make([]Move, 0, size), states: map[string]gossip.State{}}
}

// membership is called after each ring change with the new peers and ring
// and the currently discovered targets.
func (l *moveLog) membership(peers []gossip.Peer, r *ring.Ring, targets []scrape.TargetInfo, rf int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	states := make(map[string]gossip.State, len(peers))
	for _, p := range peers {
		states[p.Name] = p.State
	}
	reason := describeChange(l.states, states)
	prev := l.prev
	l.prev, l.states = r, states
	if prev == nil {
		return // the first ring: nothing moved, targets were placed
	}
	now := time.Now()
	var from, to []string
	for _, t := range targets {
		from = prev.Owners(from[:0], t.Key, rf)
		to = r.Owners(to[:0], t.Key, rf)
		if slices.Equal(from, to) {
			continue
		}
		l.add(Move{Time: now, Job: t.Job, URL: t.URL, From: slices.Clone(from), To: slices.Clone(to), Reason: reason})
	}
}

func (l *moveLog) add(m Move) {
	l.total++
	if len(l.moves) < cap(l.moves) {
		l.moves = append(l.moves, m)
		return
	}
	l.moves[l.next] = m
	l.next = (l.next + 1) % len(l.moves)
}

// recent returns up to n moves, newest first, and the total ever recorded.
func (l *moveLog) recent(n int) ([]Move, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Move, 0, min(n, len(l.moves)))
	for i := 0; i < len(l.moves) && len(out) < n; i++ {
		idx := (l.next - 1 - i + 2*len(l.moves)) % len(l.moves)
		out = append(out, l.moves[idx])
	}
	return out, l.total
}

// describeChange names what changed between two member-state maps, e.g.
// "node-3 joined; node-1 leaving".
func describeChange(before, after map[string]gossip.State) string {
	var parts []string
	for name, st := range after {
		old, ok := before[name]
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("%s joined (%s)", name, st))
		case old != st:
			parts = append(parts, fmt.Sprintf("%s %s", name, st))
		}
	}
	for name, old := range before {
		if _, ok := after[name]; !ok {
			if old == gossip.StateLeaving {
				parts = append(parts, name+" left")
			} else {
				parts = append(parts, name+" failed")
			}
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "membership changed"
	}
	return strings.Join(parts, "; ")
}

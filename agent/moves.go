package agent

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/scrape"
)

// moveLogSize is how many recent ownership moves the status page keeps: a
// scale event of a few hundred targets fits, and memory stays bounded.
const moveLogSize = 500

// Move is one target changing owner, as computed locally from two views.
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
	mu    sync.Mutex // guards the fields below
	moves []Move     // ring buffer, oldest first once full
	next  int
	total uint64

	// The last view observed and the member states then; observe's alone.
	obsMu  sync.Mutex
	prev   gossip.View
	seen   bool
	states map[string]gossip.State
}

func newMoveLog(size int) *moveLog {
	return &moveLog{moves: make([]Move, 0, size), states: map[string]gossip.State{}}
}

// recordMoves is the filter's OnReshard hook: it runs on the filter's
// goroutine after each re-shard, never on gossip's, and logs what moved since
// the previous view.
func (a *Agent) recordMoves() {
	a.preds.remember()
	a.moves.observe(a.node.View(), a.node.Peers, a.scraper.Filter().Targets)
}

// observe logs the targets whose owners differ between the previously
// observed view and v, with the member-state changes as the reason. peers
// and targets are read only when the view changed; the first view only
// places targets, nothing moved.
func (l *moveLog) observe(v gossip.View, peers func() []gossip.Peer, targets func() []scrape.TargetInfo) {
	l.obsMu.Lock()
	defer l.obsMu.Unlock()
	if l.seen && v.Same(l.prev) {
		return
	}
	states := map[string]gossip.State{}
	for _, p := range peers() {
		states[p.Name] = p.State
	}
	reason := describeChange(l.states, states)
	prev, seen := l.prev, l.seen
	l.prev, l.seen, l.states = v, true, states
	if !seen {
		return
	}
	var (
		moves    []Move
		from, to []string
		moved    bool
	)
	for _, t := range targets() {
		if from, to, moved = v.Moved(prev, t.Key, from[:0], to[:0]); moved {
			moves = append(moves, Move{Time: v.Time(), Job: t.Job, URL: t.URL, From: slices.Clone(from), To: slices.Clone(to), Reason: planReason(prev, v, t.Key, reason)})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range moves {
		l.add(m)
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

// planReason is why key moved between two views when the load-aware plan
// placed it in either: the plan's reason, or its return to its rendezvous
// owner. Otherwise it is the membership reason.
func planReason(prev, v gossip.View, key uint64, membership string) string {
	was, now := prev.Placement(), v.Placement()
	if was.Plan().Digest() == now.Plan().Digest() && was.Ring().Digest() != now.Ring().Digest() {
		return membership
	}
	if now.Planned(key) {
		o, _ := now.Plan().Lookup(key)
		return "load-aware plan: " + o.Reason.String()
	}
	if was.Planned(key) {
		return "load-aware plan: back to its rendezvous owner"
	}
	return membership
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

// count is how many moves were ever recorded.
func (l *moveLog) count() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

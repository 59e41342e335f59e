// Package scrape runs Prometheus' scrape engine on the share of discovered
// targets this agent owns. The Filter sits between service discovery and the
// scrape manager and drops every target another agent owns, so non-owned
// targets cost no scrape loop.
package scrape

import "time"

// Owner decides which targets this agent scrapes, over time: ownership
// changes are announced ahead with the instant they take effect, so that the
// old and the new owner switch at the same instant (see fence).
//
// This is all the ring this package sees: the agent passes its gossip node,
// which answers from its current read-only ownership view. The Filter never
// computes owners itself, and the fence asks once per scrape with the key the
// Filter carried on the target (KeyLabel).
//
// Both methods are called from the Filter's Run goroutine and from scrape
// loops while other goroutines change membership, so implementations must be
// safe for concurrent use, must not block and should not allocate (the fence
// asks on every scrape). After their answers may have changed (a peer joined
// or left, the node became active), the implementer pokes Filter.Notify,
// which never blocks; the pass then runs on the Filter's goroutine.
type Owner interface {
	// OwnsAt reports whether this agent owns key at instant t, which may be
	// in the past (a scrape's slot) or in the future (an announced change).
	// A node that has not joined owns nothing.
	OwnsAt(key uint64, t time.Time) bool
	// Changes returns the instants at which ownership changes, oldest first:
	// the recent past ones and those announced ahead.
	Changes() []time.Time
}

// Predecessor is implemented by an Owner that can name the agent that
// scraped a target's previous slot when the target has just changed hands
// (gossip.Node). The fence passes the name to the storage appender, so the
// new owner's first samples of the target are delivered after the old
// owner's last ones.
type Predecessor interface {
	// HandedOverFrom names the member that owned key before the latest
	// change of its owner in (slot-within, slot], if it was another member,
	// and the instant of that change; "" otherwise. It must not block or
	// allocate.
	HandedOverFrom(key uint64, slot time.Time, within time.Duration) (from string, at time.Time)
}

// HandoffAppender is implemented by storage appenders that deliver the
// samples of a target taken over from another agent only after that agent
// has delivered its own (package delivery).
type HandoffAppender interface {
	// HandedOver says that the scrape being appended is this agent's first
	// of a target that agent from scraped until the instant at: the
	// previous owner wrote none of its samples from at on.
	HandedOver(from string, at time.Time)
}

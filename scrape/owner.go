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
// Both methods are called from the Filter's Run goroutine and from scrape
// loops while other goroutines change membership, so implementations must be
// safe for concurrent use and must not block. After their answers may have
// changed (a peer joined or left, the node became active), the implementer
// calls Filter.Notify.
type Owner interface {
	// OwnsAt reports whether this agent owns key at instant t, which may be
	// in the past (a scrape's slot) or in the future (an announced change).
	// A node that has not joined owns nothing.
	OwnsAt(key uint64, t time.Time) bool
	// Changes returns the instants at which ownership changes, oldest first:
	// the recent past ones and those announced ahead.
	Changes() []time.Time
}

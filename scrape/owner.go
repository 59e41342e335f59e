// Package scrape runs Prometheus' scrape engine on the share of discovered
// targets this agent owns. The Filter sits between service discovery and the
// scrape manager and drops every target another agent owns, so non-owned
// targets cost no scrape loop.
package scrape

// Owner decides which targets this agent scrapes. Ready reports false until the
// node has joined; callers own nothing while it is false.
//
// Both methods are called from the Filter's Run goroutine while other goroutines
// change membership, so implementations must be safe for concurrent use and must
// not block. After its answers may have changed (a peer joined or left, the node
// became ready), the implementer calls Filter.Notify.
type Owner interface {
	Ready() bool
	Owns(key uint64) bool
}

package gossip

import (
	"time"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// Peer is one member of the cluster as this node sees it, itself included.
type Peer struct {
	Name string
	// Addr is the gossip address, host:port.
	Addr string
	// State is what the member announces; 0 if its metadata could not be
	// decoded (such a member owns nothing).
	State State
	// Self is true for this node.
	Self     bool
	HTTPAddr string
	Version  string
	// Digest is the ring digest the member advertises: equal digests mean
	// equal placement.
	Digest  uint64
	Started time.Time
	Weight  float64
	// Since and Until bound the time in which the member owns keys, as it
	// announced them; zero means unbounded (see Meta).
	Since, Until time.Time
}

// Observer is told about membership changes. NotifyPeersChanged is called
// from the node's event goroutine after the ring has been updated, with the
// new peers and ring; it must return quickly (copy, enqueue, return) because
// later changes wait for it. Bursts of changes are coalesced, so an observer
// sees the latest state, not every intermediate one.
type Observer interface {
	NotifyPeersChanged(peers []Peer, r *ring.Ring)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(peers []Peer, r *ring.Ring)

// NotifyPeersChanged calls f.
func (f ObserverFunc) NotifyPeersChanged(peers []Peer, r *ring.Ring) { f(peers, r) }

// agreement reports whether every other alive member with readable metadata
// advertises digest, and lists the names of those that do not.
func agreement(peers []Peer, digest uint64) (bool, []string) {
	var differ []string
	for _, p := range peers {
		if p.Self || p.State == 0 {
			continue
		}
		if p.Digest != digest {
			differ = append(differ, p.Name)
		}
	}
	return len(differ) == 0, differ
}

package gossip

import "time"

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
	// ClockOffset is the member's clock minus this node's, ClockUncertainty
	// bounds its error, over ClockSamples recent probes (0: not measured
	// yet, and for this node itself). See ClockEstimate.
	ClockOffset, ClockUncertainty time.Duration
	ClockSamples                  int
	// Discovery is what the member advertises it discovers.
	Discovery Discovery
	// Plan is the newest load-aware plan the member holds (plan.go).
	Plan PlanRef
	// Quarantines are the targets the member advertises it holds.
	Quarantines []Quarantine
	// InFlight are the targets whose scrape the member advertises has been
	// in progress for a while.
	InFlight []uint64
}

// Observer is poked after membership changes. Notify is called from the
// node's event goroutine once the view has been updated (the schedule was
// rebuilt, or an announced instant passed and the ring in effect changed);
// later changes wait for it, so it must not block or do work: a non-blocking
// send on a capacity-1 channel, and return. The observer's own goroutine then
// reads Node.View and Node.Peers. Pokes in a burst may coalesce, so an
// observer sees the latest state, not every intermediate one.
type Observer interface {
	Notify()
}

// ObserverFunc adapts a function to Observer. The function must not block.
type ObserverFunc func()

// Notify calls f.
func (f ObserverFunc) Notify() { f() }

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

package gossip

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clock is the time source of every ownership decision: the instants a node
// announces, the schedule it builds, the views it hands out and the checks of
// its peers' claims. Production runs on the system clock; tests, and the
// fleet harness through --debug.clock-offset, shift it to play a host whose
// clock is off.
type Clock func() time.Time

// OffsetClock returns the system clock shifted by d: the clock of a host
// whose time is d ahead (or behind, d < 0) of true time.
func OffsetClock(d time.Duration) Clock {
	if d == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(d) }
}

// Clock offsets between members are measured from memberlist's probes: the
// member that answers a ping puts its clock's reading in the ack
// (AckPayload), and the prober, which knows the round trip, compares it with
// its own clock at the middle of the round trip (NotifyPingComplete). The
// error of one sample is at most half the round trip (its uncertainty), on
// a LAN well under a millisecond; the estimate is the median of the last
// clockWindow samples, so one delayed ack does not move it.
const (
	// clockWindow is how many recent samples per peer the median runs over:
	// with shoal's 400 ms probe interval, a peer of a 3-agent cluster is
	// probed about every 0.8 s, so 8 samples span a few seconds.
	clockWindow = 8
	// clockQuorum is how many measured peers a joining node waits for
	// before it judges its own clock (fewer when the cluster is smaller):
	// enough for a median to outvote one skewed peer, few enough that a
	// large cluster does not wait for a probe round to every member.
	clockQuorum = 3
	// clockMeasureTimeout bounds the wait for a first measurement: a peer
	// that answers probes only over TCP (UDP blocked) never yields one, and
	// an agent that cannot measure goes on rather than never joining.
	clockMeasureTimeout = 10 * time.Second
	// clockPayloadVersion starts an ack payload; a payload of another
	// version or length is ignored (a future format, or not a shoal agent).
	clockPayloadVersion = 1
	clockPayloadSize    = 9
	// DefaultMaxClockOffsetShare is --cluster.max-clock-offset's default,
	// as a share of the shortest scrape interval. An agent whose clock is
	// off by d stamps its samples d off and, in a handoff, starts or stops
	// scraping d early or late: under a quarter of an interval, no slot is
	// scraped twice or missed in a handoff, and a slot's timestamp still
	// rounds to the right phase.
	DefaultMaxClockOffsetShare = 0.25
	// defaultScrapeInterval stands for the shortest scrape interval while
	// no job is configured (Prometheus' own default).
	defaultScrapeInterval = time.Minute
)

// encodeClock is the ack payload: the version and t in Unix nanoseconds.
func encodeClock(t time.Time) []byte {
	b := make([]byte, clockPayloadSize)
	b[0] = clockPayloadVersion
	binary.BigEndian.PutUint64(b[1:], uint64(t.UnixNano()))
	return b
}

// decodeClock reads an ack payload; ok is false for any other payload.
func decodeClock(b []byte) (time.Time, bool) {
	if len(b) != clockPayloadSize || b[0] != clockPayloadVersion {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))), true
}

// ClockEstimate is what this node knows of one peer's clock.
type ClockEstimate struct {
	// Offset is the peer's clock minus this node's: positive when the peer
	// is ahead. It is the median of the recent samples.
	Offset time.Duration
	// Uncertainty bounds the error of the estimate: the median of the
	// samples' half round trips.
	Uncertainty time.Duration
	// Samples is how many samples the estimate rests on, up to the window.
	Samples int
	// At is when the last sample was taken, by this node's clock.
	At time.Time
}

// clockSample is one probe's reading of a peer's offset.
type clockSample struct {
	offset, half time.Duration
}

// peerClock is the ring buffer of one peer's recent samples.
type peerClock struct {
	samples [clockWindow]clockSample
	n, next int
	at      time.Time
}

// clocks estimates every peer's clock offset; a nil one knows none (a Node
// not made by New). It is safe for concurrent use; observe is called from memberlist's probe goroutine and never blocks
// beyond its mutex.
type clocks struct {
	mu    sync.Mutex
	peers map[string]*peerClock
}

func newClocks() *clocks { return &clocks{peers: map[string]*peerClock{}} }

// observe records a probe of peer: it answered with its clock reading
// remote, and the round trip took rtt, ending at local by this node's clock.
// The peer read its clock about half a round trip before the ack arrived.
func (c *clocks) observe(peer string, remote, local time.Time, rtt time.Duration) {
	if rtt < 0 {
		return
	}
	if c == nil {
		return
	}
	half := rtt / 2
	s := clockSample{offset: remote.Sub(local.Add(-half)), half: half}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[peer]
	if p == nil {
		p = &peerClock{}
		c.peers[peer] = p
	}
	p.samples[p.next] = s
	p.next = (p.next + 1) % clockWindow
	p.n = min(p.n+1, clockWindow)
	p.at = local
}

// forget drops a peer that left: a process that comes back under its name
// may run on another host.
func (c *clocks) forget(peer string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.peers, peer)
}

// estimate returns the estimate of peer's clock; ok is false before the
// first sample.
func (c *clocks) estimate(peer string) (ClockEstimate, bool) {
	if c == nil {
		return ClockEstimate{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[peer]
	if p == nil || p.n == 0 {
		return ClockEstimate{}, false
	}
	offs := make([]time.Duration, p.n)
	halves := make([]time.Duration, p.n)
	for i, s := range p.samples[:p.n] {
		offs[i], halves[i] = s.offset, s.half
	}
	return ClockEstimate{Offset: median(offs), Uncertainty: median(halves), Samples: p.n, At: p.at}, true
}

// median returns the median of ds (the mean of the middle two for an even
// count); it sorts ds. It returns 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	m := len(ds) / 2
	if len(ds)%2 == 1 {
		return ds[m]
	}
	return ds[m-1] + (ds[m]-ds[m-1])/2
}

// ClockBound is --cluster.max-clock-offset: how far this node's clock may be
// from the cluster's before it stops taking targets over, either a duration
// or a share of the shortest scrape interval.
type ClockBound struct {
	// Max, when positive, is the bound.
	Max time.Duration
	// Share, used when Max is zero, is the bound as a share of the shortest
	// scrape interval, in (0, 1].
	Share float64
}

// DefaultClockBound is a quarter of the shortest scrape interval.
func DefaultClockBound() ClockBound { return ClockBound{Share: DefaultMaxClockOffsetShare} }

// ParseClockBound reads a bound: a duration ("500ms") or a percentage of
// the shortest scrape interval ("25%").
func ParseClockBound(s string) (ClockBound, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f > 0 && f <= 100) || math.IsNaN(f) {
			return ClockBound{}, fmt.Errorf("--cluster.max-clock-offset must be a duration such as 500ms or a percentage of the shortest scrape interval above 0%% and at most 100%% such as 25%%, got %q", s)
		}
		return ClockBound{Share: f / 100}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return ClockBound{}, fmt.Errorf("--cluster.max-clock-offset must be a positive duration such as 500ms or a percentage of the shortest scrape interval such as 25%%, got %q", s)
	}
	return ClockBound{Max: d}, nil
}

// String formats b as ParseClockBound reads it.
func (b ClockBound) String() string {
	if b.Max > 0 {
		return b.Max.String()
	}
	return strconv.FormatFloat(b.Share*100, 'g', -1, 64) + "%"
}

// resolve returns the bound for a shortest scrape interval.
func (b ClockBound) resolve(shortest time.Duration) time.Duration {
	if b.Max > 0 {
		return b.Max
	}
	if shortest <= 0 {
		shortest = defaultScrapeInterval
	}
	return time.Duration(float64(shortest) * b.Share)
}

func (b ClockBound) validate() error {
	if b.Max < 0 || b.Max == 0 && !(b.Share > 0 && b.Share <= 1) {
		return fmt.Errorf("--cluster.max-clock-offset must be a positive duration or a share of the shortest scrape interval in (0%%, 100%%], got %s", b)
	}
	return nil
}

// ClockStatus is how this node's clock compares with the cluster's.
type ClockStatus struct {
	// Offset is this node's clock minus the cluster's: minus the median of
	// the measured offsets of the reference members (see Reference), this
	// node counting 0 when it is one of them.
	Offset time.Duration
	// Uncertainty is the median uncertainty of the measurements used.
	Uncertainty time.Duration
	// Bound is --cluster.max-clock-offset resolved against the shortest
	// scrape interval.
	Bound time.Duration
	// Reference is how many other members the median ran over: the active
	// ones (those whose clocks time the handoffs now, this node counting
	// when it is one), or every alive one while none is active. Measured is
	// how many of them have an estimate.
	Reference, Measured int
	// InBound is false when |Offset| exceeds Bound. A node with no other
	// member, or none measured yet, is in bound.
	InBound bool
}

// Reason says what is wrong and what to do; empty when in bound.
func (s ClockStatus) Reason() string {
	if s.InBound {
		return ""
	}
	dir := "ahead of"
	if s.Offset < 0 {
		dir = "behind"
	}
	peers := "peers"
	if s.Measured == 1 {
		peers = "peer"
	}
	return fmt.Sprintf("this agent's clock is %s %s the cluster's (median of %d %s, ±%s), more than --cluster.max-clock-offset %s: "+
		"fix its time synchronisation (NTP: chronyc tracking, timedatectl); it takes no targets over until back in bound",
		abs(s.Offset).Round(time.Millisecond), dir, s.Measured, peers, s.Uncertainty.Round(time.Microsecond), s.Bound)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// clockStatus compares this node's clock with the reference members in
// peers (see ClockStatus.Reference).
func (n *Node) clockStatus(peers []Peer) ClockStatus {
	st := ClockStatus{Bound: n.ClockBound(), InBound: true}
	var active, alive []Peer
	selfActive := false
	for _, p := range peers {
		if p.Self {
			selfActive = p.State == StateActive
			continue
		}
		switch p.State {
		case StateActive:
			active = append(active, p)
			alive = append(alive, p)
		case StateJoining, StateLeaving:
			alive = append(alive, p)
		}
	}
	ref := active
	if len(ref) == 0 && !selfActive {
		// Nobody owns keys yet (a fleet starting): every clock counts.
		ref, selfActive = alive, true
	}
	st.Reference = len(ref)
	var offs, uncs []time.Duration
	if selfActive {
		offs = append(offs, 0)
	}
	for _, p := range ref {
		if p.ClockSamples > 0 {
			st.Measured++
			offs = append(offs, p.ClockOffset)
			uncs = append(uncs, p.ClockUncertainty)
		}
	}
	if st.Measured == 0 {
		return st
	}
	st.Offset = -median(offs)
	st.Uncertainty = median(uncs)
	st.InBound = abs(st.Offset) <= st.Bound
	return st
}

// ClockStatus returns how this node's clock compares with the cluster's.
func (n *Node) ClockStatus() ClockStatus { return n.clockStatus(n.Peers()) }

// ClockBound returns --cluster.max-clock-offset resolved against the
// shortest scrape interval (SetShortestInterval).
func (n *Node) ClockBound() time.Duration {
	return n.cfg.MaxClockOffset.resolve(time.Duration(n.shortest.Load()))
}

// SetShortestInterval tells the node the shortest scrape interval of the
// running config, which a share-of-interval --cluster.max-clock-offset is a
// share of; zero when no job is configured. It is safe for concurrent use.
func (n *Node) SetShortestInterval(d time.Duration) {
	n.shortest.Store(int64(d))
	n.pokeClock()
}

// Now returns the time by this node's clock (Config.Clock): the clock its
// announced instants and its views use.
func (n *Node) Now() time.Time { return n.now() }

// now reads the node's clock; a Node not made by New (tests) has the
// system clock.
func (n *Node) now() time.Time {
	if n.clk == nil {
		return time.Now()
	}
	return n.clk()
}

// pokeClock asks the event loop to re-judge this node's clock; it never
// blocks.
func (n *Node) pokeClock() {
	select {
	case n.clockCh <- struct{}{}:
	default:
	}
}

// judgeClock logs and counts a change of this node's clock between in and
// out of bound; it runs on the event loop.
func (n *Node) judgeClock() {
	st := n.ClockStatus()
	was := n.clockOut.Swap(!st.InBound)
	switch {
	case !st.InBound && !was:
		n.metrics.clockOut.Inc()
		n.logger.Warn("clock out of bound: "+st.Reason(), "offset", st.Offset, "bound", st.Bound, "peers", st.Measured, "uncertainty", st.Uncertainty)
	case st.InBound && was:
		n.logger.Info("clock back within --cluster.max-clock-offset", "offset", st.Offset, "bound", st.Bound, "peers", st.Measured)
	}
}

// waitForClock keeps a joining node out of the ring while its clock is
// further from the cluster's than the bound: with a skewed clock it would
// stamp samples off and start and stop scraping at the wrong moments. It
// waits for min(clockQuorum, reference members) measured peers first, for at
// most clockMeasureTimeout; after it, it judges by the peers measured, and
// joins unchecked when none was.
func (n *Node) waitForClock(ctx context.Context) error {
	start := time.Now()
	tick := time.NewTicker(n.cfg.Timers.ProbeInterval)
	defer tick.Stop()
	held := false
	for {
		st := n.clockStatus(n.liveAndRebuilt())
		want := min(clockQuorum, st.Reference)
		switch {
		case st.Reference == 0:
			return nil
		case st.Measured < want && time.Since(start) < clockMeasureTimeout:
			n.setStatus(fmt.Sprintf("measuring clock offsets (%d of %d peers)", st.Measured, want))
		case st.Measured == 0:
			n.logger.Warn("no clock offset measured: peers answer no UDP probe; joining without checking this agent's clock", "peers", st.Reference)
			return nil
		case st.InBound:
			if held {
				n.logger.Info("clock within --cluster.max-clock-offset, joining the ring", "offset", st.Offset, "bound", st.Bound)
			}
			return nil
		default:
			// judgeClock, on the event loop, logs it and counts it.
			n.setStatus(st.Reason())
			held = true
		}
		select {
		case <-ctx.Done():
			return errStopping
		case <-n.leavingCh:
			return errStopping
		case <-n.crash:
			return errStopping
		case other := <-n.conflict:
			return n.nameConflict(other)
		case <-tick.C:
		}
	}
}

// liveAndRebuilt rebuilds the peers from memberlist's members and returns
// them.
func (n *Node) liveAndRebuilt() []Peer {
	n.rebuild()
	return n.Peers()
}

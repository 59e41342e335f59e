// Package gossip forms the shoal cluster with hashicorp/memberlist and keeps,
// on every node, the hash ring computed from the live members.
//
// Each node gossips its liveness plus a small metadata record (state, HTTP
// address, version, the digest of the ring it computes). Only members in
// state active own keys; a member that is shutting down first announces
// leaving, drops out of every ring while it is still alive so that its keys
// move, and only then leaves memberlist. The ring itself is never gossiped:
// every node computes it locally from the member list (see package ring), and
// the digests in the metadata let anyone check that all nodes agree.
//
// Planned changes are fenced in time: a member announces the instant at
// which it starts (Meta.Since) or stops (Meta.Until) owning keys, Config.
// HandoffLead ahead, and every node's Schedule switches at that instant. A
// key therefore has one owner at every instant even while the news spreads;
// only a crash, which nobody can announce, moves keys when it is noticed.
//
// Everything outside this package sees ownership through a View (Node.View):
// owners of a key now, at an instant and after the announced changes, and
// what moved between two views. Observers are only poked (Observer.Notify)
// and read the view from their own goroutines.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// ErrNameConflict is returned by Run when another live member already uses
// this node's name and is older: this node stands down rather than corrupt
// the ring.
var ErrNameConflict = errors.New("node name already in use in the cluster")

// ErrNotRunning is returned by methods that need Run to have started.
var ErrNotRunning = errors.New("gossip node is not running")

// broadcastTimeout bounds how long the advertiser waits for memberlist to
// confirm a metadata broadcast. The broadcast stays queued and goes out
// regardless; the wait only paces the advertiser, and keeping it short keeps
// shutdown quick.
const broadcastTimeout = 250 * time.Millisecond

// leaveTimeout bounds memberlist's graceful leave broadcast.
const leaveTimeout = 2 * time.Second

// Node is this process's membership in the cluster. Create it with New and
// start it with Run; its accessors are safe for concurrent use and return
// empty results until Run has created the memberlist.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	started time.Time

	changed   chan struct{} // capacity 1: coalesced "membership changed"
	advertise chan struct{} // capacity 1: coalesced "re-broadcast our metadata"
	conflict  chan string   // capacity 1: address of an older node with our name
	crash     chan struct{} // tests close it to stop Run without leaving
	nudge     chan struct{} // capacity 1: rejoin now (a peer list changed)
	joinWake  chan struct{} // capacity 1: a member appeared while joining
	notices   chan notice   // refusals to tell the refused peers

	// alone: no Peers were configured, the node is a cluster of one at once.
	alone bool
	// accepted is set once a peer's state lists this node alive at its
	// address: that peer took it in.
	accepted atomic.Bool
	// leavingCh is closed when the node starts leaving; leaveOnce closes it.
	leavingCh chan struct{}
	leaveOnce sync.Once
	// status says why the node is not active yet (NotReadyReason).
	status atomic.Pointer[string]
	// received are the refusals peers sent this node, by their address.
	noticesMu sync.Mutex
	received  map[string]notice

	rebuildMu sync.Mutex   // serializes rebuild; never held while mu is
	cache     rebuildCache // guarded by rebuildMu

	mu        sync.Mutex // guards ml, state, since, until, disc, observers; never held across memberlist calls
	ml        *memberlist.Memberlist
	state     State
	since     time.Time // StateActive: owns keys from then
	until     time.Time // StateLeaving: owns keys until then
	disc      Discovery // what SetDiscovery set
	observers []Observer
	// planObservers are also told when only the plans peers advertise
	// change (ObservePlans).
	planObservers []Observer

	// members is our copy of memberlist's alive members, updated in the
	// event callbacks while memberlist holds its node lock. The *Node values
	// from memberlist.Members() point into state that memberlist keeps
	// mutating, so reading them later would race.
	membersMu sync.Mutex
	members   map[string]member
	// tombs are members that left memberlist while they still owned keys
	// (a leaving member's Until in the future): they stay in the schedule
	// until then. Guarded by membersMu.
	tombs map[string]tomb

	// keys is the gossip keyring, nil without encryption; keysMu
	// serializes ReloadKeys (the keyring guards itself).
	keys   *memberlist.Keyring
	keysMu sync.Mutex
	// idents checks that members keep their identity (see identity.go).
	idents *identities
	// refused rate-limits the log of refused peer metadata, by member name.
	refusedMu sync.Mutex
	refused   map[string]time.Time

	// clk is the node's clock (Config.Clock), read through now; clocks
	// estimates its peers'.
	clk    Clock
	clocks *clocks
	// clockCh (capacity 1) asks the event loop to re-judge this node's
	// clock; clockOut is whether it was out of bound when last judged.
	clockCh  chan struct{}
	clockOut atomic.Bool
	// shortest is the shortest scrape interval (SetShortestInterval), in
	// nanoseconds; 0 without scrape jobs.
	shortest atomic.Int64

	sched atomic.Pointer[Schedule]
	// plans are the load-aware plans this node holds, oldest first
	// (plan.go); planMu guards them and is never held across rebuild.
	planMu sync.Mutex
	plans  []PlanRecord
	// lead is the leader as of the last rebuild (leader.go).
	lead          atomic.Pointer[leadership]
	leaderChanges prometheus.Counter
	// replaced are the recent schedules and when they were replaced, newest
	// first, for HandedOverFrom (a crash rebuilds the ring without the dead
	// member "since ever").
	replaced atomic.Pointer[[]replacedSchedule]
	peers    atomic.Pointer[[]Peer]
	self     atomic.Pointer[string] // advertised gossip address once running

	// failures are the members that failed without leaving (Failures);
	// failuresMu serializes writers.
	failuresMu      sync.Mutex
	failures        atomic.Pointer[[]Failure]
	failuresVersion atomic.Uint64
	// quarantines and inFlight are what SetQuarantines and SetInFlight
	// set; guarded by mu.
	quarantines []Quarantine
	inFlight    []uint64
}

// New validates cfg and returns a Node. It starts nothing. logger may be nil;
// reg may be nil, in which case metrics are not exported.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := cfg.keyring()
	if err != nil {
		return nil, err
	}
	alone := cfg.Peers == nil
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Clock
	if now == nil {
		now = OffsetClock(cfg.ClockOffset)
	}
	n := &Node{
		clk:       now,
		clocks:    newClocks(),
		clockCh:   make(chan struct{}, 1),
		cfg:       cfg,
		logger:    logger.With("component", "gossip"),
		started:   now(),
		changed:   make(chan struct{}, 1),
		advertise: make(chan struct{}, 1),
		conflict:  make(chan string, 1),
		crash:     make(chan struct{}),
		nudge:     make(chan struct{}, 1),
		joinWake:  make(chan struct{}, 1),
		notices:   make(chan notice, 16),
		alone:     alone,
		leavingCh: make(chan struct{}),
		received:  map[string]notice{},
		members:   map[string]member{},
		tombs:     map[string]tomb{},
		refused:   map[string]time.Time{},
		state:     StateJoining,
		idents:    newIdentities(reg),
	}
	if len(keys) > 0 {
		if n.keys, err = memberlist.NewKeyring(keys[1:], keys[0]); err != nil {
			return nil, fmt.Errorf("cluster secret key: %w", err)
		}
	}
	n.sched.Store(emptySchedule)
	n.peers.Store(&[]Peer{})
	m, err := newMetrics(n, reg)
	if err != nil {
		return nil, err
	}
	n.metrics = m
	if err := n.registerLeader(reg); err != nil {
		return nil, err
	}
	if err := n.registerPlan(reg); err != nil {
		return nil, err
	}
	return n, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// HandoffLead returns how far ahead this node announces ownership changes.
func (n *Node) HandoffLead() time.Duration { return n.cfg.HandoffLead }

// ReplicationFactor returns how many members own each key.
func (n *Node) ReplicationFactor() int { return n.cfg.ReplicationFactor }

// Observe registers o to be told about membership changes. Call it before
// Run; observers added later see only the changes after they were added.
func (n *Node) Observe(o Observer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.observers = append(n.observers, o)
}

// ObservePlans registers o like Observe, and also to be told when a peer
// advertises another load-aware plan while nothing else changed: the
// planner, which fetches it. Other observers are not poked then, so that the
// scrape filter's next pass, rate-limited, is free for the plan's install.
func (n *Node) ObservePlans(o Observer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.planObservers = append(n.planObservers, o)
}

// Ready reports whether the node has joined the cluster (or started a new
// one) and is active. A node that is not ready owns nothing.
func (n *Node) Ready() bool { return n.State() == StateActive }

// State returns the state this node announces.
func (n *Node) State() State {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Owns reports whether this node is one of the ReplicationFactor owners of
// key now. It does not allocate and is safe to call from many goroutines.
func (n *Node) Owns(key uint64) bool { return n.View().Owns(key) }

// OwnsAt reports whether this node is one of the ReplicationFactor owners of
// key at instant t, as far as this node knows now: t may be in the past (a
// sample's timestamp) or in the future (an announced change). It is
// View().OwnsAt, for consumers that ask one question at a time.
func (n *Node) OwnsAt(key uint64, t time.Time) bool { return n.View().OwnsAt(key, t) }

// Changes returns the instants at which ownership changes, past (a few
// minutes) and announced, oldest first. It is View().Changes.
func (n *Node) Changes() []time.Time { return n.View().Changes() }

// Ring returns the ring in effect now. The ring is immutable. Callers outside
// gossip ask View instead of doing ring math.
func (n *Node) Ring() *ring.Ring { return n.sched.Load().At(n.now()) }

// Schedule returns the ring over time. It is immutable. Callers outside
// gossip ask View instead.
func (n *Node) Schedule() *Schedule { return n.sched.Load() }

// Peers returns the alive members, this node included, sorted by name, with
// the current estimates of their clocks.
func (n *Node) Peers() []Peer {
	ps := slices.Clone(*n.peers.Load())
	for i := range ps {
		if ps[i].Self {
			continue
		}
		if e, ok := n.clocks.estimate(ps[i].Name); ok {
			ps[i].ClockOffset, ps[i].ClockUncertainty, ps[i].ClockSamples = e.Offset, e.Uncertainty, e.Samples
		}
	}
	return ps
}

// Agreement reports whether every other alive member advertises the same
// ring digest as this node, and if not, which ones differ.
func (n *Node) Agreement() (bool, []string) {
	return agreement(*n.peers.Load(), n.sched.Load().FinalPlacement().Digest())
}

// Addr returns the advertised gossip address, or "" before Run.
func (n *Node) Addr() string { return n.advertised() }

func (n *Node) advertised() string {
	if p := n.self.Load(); p != nil {
		return *p
	}
	return ""
}

func (n *Node) localMeta() Meta {
	n.mu.Lock()
	st, since, until := n.state, n.since, n.until
	n.mu.Unlock()
	return Meta{
		State:       st,
		HTTPAddr:    n.cfg.HTTPAddr,
		Version:     n.cfg.Version,
		Digest:      n.sched.Load().FinalPlacement().Digest(),
		Plan:        n.planRef(),
		Started:     n.started,
		Weight:      n.cfg.Weight,
		Since:       since,
		Until:       until,
		Discovery:   n.discovery(),
		Quarantines: n.Quarantines(),
		InFlight:    n.inFlightKeys(),
	}
}

// SetInFlight sets the targets whose scrape this node advertises has been
// in progress for a while, longest first (see Failure.InFlight); a change is
// broadcast at once.
func (n *Node) SetInFlight(keys []uint64) {
	n.mu.Lock()
	changed := !slices.Equal(n.inFlight, keys)
	n.inFlight = slices.Clone(keys)
	n.mu.Unlock()
	if changed {
		n.readvertise()
	}
}

func (n *Node) inFlightKeys() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.inFlight)
}

// SetQuarantines sets the targets this node advertises it holds out of the
// ring, most important first (as many as fit are advertised); a change is
// broadcast at once.
func (n *Node) SetQuarantines(qs []Quarantine) {
	qs = slices.Clone(qs)
	for i := range qs {
		qs[i].Until = time.Unix(qs[i].Until.Unix(), 0) // as peers decode it
	}
	n.mu.Lock()
	changed := !slices.Equal(n.quarantines, qs)
	n.quarantines = qs
	n.mu.Unlock()
	if changed {
		n.readvertise()
	}
}

// Quarantines returns what SetQuarantines set.
func (n *Node) Quarantines() []Quarantine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.quarantines)
}

// SetDiscovery sets what this node advertises it discovers; peers compare
// it with theirs. A change is broadcast at once.
func (n *Node) SetDiscovery(d Discovery) {
	// As peers decode it.
	d.Changed = fromUnixMilli(unixMilli(d.Changed))
	n.mu.Lock()
	changed := n.disc != d
	n.disc = d
	n.mu.Unlock()
	if changed {
		n.readvertise()
	}
}

func (n *Node) discovery() Discovery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.disc
}

// signal asks the event loop to rebuild the ring; it never blocks.
func (n *Node) signal() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Run creates the memberlist, joins the cluster (retrying until a peer
// accepts this node, see Config.Peers and Config.Bootstrap), waits for
// Config.WaitForSize, becomes active unless it started leaving meanwhile,
// and keeps the ring up to date until ctx is cancelled; then it leaves memberlist
// gracefully and shuts it down. Call AnnounceLeaving first to hand targets
// over before the node disappears. Run returns nil on cancellation, and an
// error if the memberlist cannot be created or another node owns this name.
func (n *Node) Run(ctx context.Context) error {
	ml, err := n.create()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.ml = ml
	n.mu.Unlock()
	addr := ml.LocalNode().Address()
	n.self.Store(&addr)
	sec := n.Security()
	n.logger.Info("gossip started", "name", n.cfg.Name, "addr", addr, "cluster", n.cfg.ClusterName, "encrypted", sec.Encrypted, "keys", sec.Keys)
	if !sec.Encrypted {
		if _, exposed, ok := n.cfg.exposed(); ok {
			n.logger.Warn("gossip is not encrypted or authenticated (--cluster.insecure): anyone who can reach this address can join the cluster, take targets and make agents contact addresses it chooses; set --cluster.secret-key-file",
				"addr", exposed)
		}
	}

	loopCtx, stopLoop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.loop(loopCtx, ml) })
	wg.Go(func() { n.advertiser(loopCtx, ml) })
	wg.Go(func() { n.noticer(loopCtx, ml) })
	wg.Go(func() { n.identifier(loopCtx, ml) })
	defer func() {
		stopLoop()
		wg.Wait()
	}()

	if err := n.start(ctx, ml); err != nil {
		// No Leave: its dead message would be about the other node's name.
		_ = ml.Shutdown()
		return err
	}

	var rejoin <-chan time.Time
	if n.cfg.RejoinInterval > 0 {
		t := time.NewTicker(n.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	for {
		select {
		case <-ctx.Done():
			n.leave(ml)
			return nil
		case <-n.crash:
			_ = ml.Shutdown()
			return nil
		case other := <-n.conflict:
			// Only a node still joining yields (mustYield): one that
			// stopped before it became active.
			_ = ml.Shutdown()
			return n.nameConflict(other)
		case <-rejoin:
			if n.State() != StateLeaving {
				n.rejoin(ctx, ml)
			}
		case <-n.nudge:
			if n.State() != StateLeaving {
				n.rejoin(ctx, ml)
			}
		}
	}
}

func (n *Node) create() (*memberlist.Memberlist, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = n.cfg.Name
	c.Label = n.cfg.ClusterName
	host, port, _ := splitHostPort(n.cfg.BindAddr)
	c.BindAddr, c.BindPort = host, port
	c.AdvertisePort = port
	if n.cfg.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(n.cfg.AdvertiseAddr)
		c.AdvertiseAddr, c.AdvertisePort = ah, ap
	}
	if n.keys != nil {
		// memberlist keeps the pointer: ReloadKeys changes the keys in place.
		c.Keyring = n.keys
	}
	t := n.cfg.Timers
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval = t.GossipInterval
	c.GossipNodes = t.GossipNodes
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	d := &delegate{n: n}
	c.Delegate, c.Events, c.Conflict, c.Alive, c.Merge, c.Ping = d, d, d, d, d, d
	c.Logger = newStdLogger(n.logger)
	c.LogOutput = nil
	tr, err := newHelloTransport(host, port, hello{Cluster: n.cfg.ClusterName, Encrypted: n.keys != nil}, c.Logger)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", n.cfg.BindAddr, err)
	}
	if port == 0 {
		// What memberlist does with its own transport.
		c.BindPort = tr.GetAutoBindPort()
		c.AdvertisePort = c.BindPort
	}
	c.Transport = tr
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", n.cfg.BindAddr, err)
	}
	return ml, nil
}

// rejoin joins every provided address that is not an alive member: after a
// partition heals, each side finds the other this way even once memberlist
// has stopped gossiping to the dead.
func (n *Node) rejoin(ctx context.Context, ml *memberlist.Memberlist) {
	if n.alone {
		return
	}
	addrs, err := n.cfg.Peers(ctx)
	if err != nil {
		n.logger.Warn("rejoin: listing peers failed, will retry", "err", err)
		return
	}
	alive := map[string]bool{}
	n.membersMu.Lock()
	for _, m := range n.members {
		alive[m.addr] = true
	}
	n.membersMu.Unlock()
	var missing []string
	for _, a := range n.others(addrs) {
		if !alive[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return
	}
	before := ml.NumMembers()
	// One push/pull per address, rejoinParallel at a time: memberlist's
	// Join tries addresses one after another, and each unreachable one
	// (the other side of a partition) holds it for TCPTimeout, so after a
	// heal the reachable ones would wait behind the rest.
	var (
		mu     sync.Mutex
		joined int
		errs   []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, rejoinParallel)
	)
	for _, a := range missing {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			k, err := ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			joined += k
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if joined > 0 && ml.NumMembers() > before {
		n.logger.Info("rejoin merged members", "members", ml.NumMembers(), "was", before)
	} else if len(errs) > 0 {
		n.logger.Debug("rejoin found no new member", "err", errors.Join(errs...), "tried", len(missing))
	}
}

// rejoinParallel bounds the concurrent push/pulls of one rejoin.
const rejoinParallel = 8

// others drops this node's own address and malformed ones from addrs. The
// PeerProvider resolves names (the agent's --cluster.join does): members
// are compared by IP address.
func (n *Node) others(addrs []string) []string {
	self := n.advertised()
	var out []string
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err == nil && net.ParseIP(host) == nil {
			err = errors.New("host must be an IP address; the peer provider resolves names")
		}
		if err != nil {
			n.logger.Warn("ignoring malformed peer address", "addr", a, "err", err)
			continue
		}
		if a != self {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TriggerRejoin asks Run to re-resolve its peers and join any that are not
// alive members now, instead of waiting for the next rejoin tick; a watch on
// the peer list (e.g. Consul) calls it when the list changes. It never blocks.
func (n *Node) TriggerRejoin() {
	select {
	case n.nudge <- struct{}{}:
	default:
	}
}

// transition changes the announced state and its instants and broadcasts
// them. Once the node started leaving it never announces another state: a
// stop is final, whatever was in progress (a join, a wait, a rejoin). It
// reports whether the state changed.
func (n *Node) transition(st State, since, until time.Time) bool {
	// Peers learn the instants in milliseconds; use the same ones here.
	since, until = fromUnixMilli(unixMilli(since)), fromUnixMilli(unixMilli(until))
	n.mu.Lock()
	old := n.state
	if old == StateLeaving && st != StateLeaving {
		n.mu.Unlock()
		return false
	}
	n.state, n.since, n.until = st, since, until
	n.mu.Unlock()
	n.logger.Info("node state changed", "from", old, "to", st, "owns_from", since, "owns_until", until)
	n.rebuild()
	n.readvertise()
	return true
}

// readvertise asks the advertiser to broadcast our metadata; it never blocks.
func (n *Node) readvertise() {
	select {
	case n.advertise <- struct{}{}:
	default:
	}
}

// advertiser broadcasts metadata changes. memberlist's UpdateNode blocks
// until the broadcast has gone out, so it runs here rather than in the
// event loop; requests that arrive meanwhile coalesce into one.
func (n *Node) advertiser(ctx context.Context, ml *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.advertise:
			if err := ml.UpdateNode(broadcastTimeout); err != nil {
				n.logger.Debug("metadata broadcast not confirmed; peers learn it by gossip", "err", err)
			}
		}
	}
}

// AnnounceLeaving sets this node's state to leaving with the instant until
// which it still owns its keys, so that every member, this one included,
// drops it from the ring at that instant, and waits until every peer
// advertises the new ring or ctx is done. It returns the instant it
// announced: zero when the node owned nothing (it was still joining, or its
// owning instant was more than a second ahead) and leaves at once, in which
// case it does not wait; the instant announced first when it was leaving
// already. From then on the node never becomes active again, and a join in
// progress stops. The node keeps gossiping; Run's cancellation then leaves
// memberlist. If it leaves before until, peers keep it in the ring until
// then: that is how a restart grace holds its keys.
func (n *Node) AnnounceLeaving(ctx context.Context, until time.Time) (time.Time, error) {
	// Before Run has created the memberlist the node owns nothing: it
	// leaves at once, and Run never makes it active.
	n.leaveOnce.Do(func() { close(n.leavingCh) })
	until = n.leaveAs(until)
	if until.IsZero() {
		n.logger.Info("leaving at once: this node owned no keys")
		return time.Time{}, nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok, _ := n.Agreement(); ok {
			return until, nil
		}
		select {
		case <-ctx.Done():
			_, differ := n.Agreement()
			return until, fmt.Errorf("wait for %d peers to take over (%v): %w", len(differ), differ, ctx.Err())
		case <-tick.C:
		}
	}
}

// leaveAs announces leaving and returns the instant announced: until for
// an active node, zero for one that owns nothing yet (joining, or an owning
// instant more than leaveNotice ahead), and the first announcement's
// instant for a node leaving already. State and instant are decided under
// one lock, so a join finishing at the same moment cannot slip in between.
func (n *Node) leaveAs(until time.Time) time.Time {
	n.mu.Lock()
	old, since := n.state, n.since
	if old == StateLeaving {
		until = n.until
		n.mu.Unlock()
		return until
	}
	if old != StateActive || since.After(n.now().Add(leaveNotice)) {
		until = time.Time{}
	}
	until = fromUnixMilli(unixMilli(until))
	n.state, n.until = StateLeaving, until
	n.mu.Unlock()
	n.logger.Info("node state changed", "from", old, "to", StateLeaving, "owns_from", since, "owns_until", until)
	n.rebuild()
	n.readvertise()
	return until
}

func (n *Node) leave(ml *memberlist.Memberlist) {
	n.logger.Info("leaving cluster")
	if err := ml.Leave(leaveTimeout); err != nil {
		n.logger.Warn("graceful leave did not complete", "err", err)
	}
	if err := ml.Shutdown(); err != nil {
		n.logger.Warn("gossip shutdown", "err", err)
	}
	n.logger.Info("left cluster")
}

// loop rebuilds the schedule after membership changes and tells observers,
// also when an announced instant passes and the ring in effect changes.
func (n *Node) loop(ctx context.Context, ml *memberlist.Memberlist) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.armForNextChange(timer)
		select {
		case <-ctx.Done():
			return
		case <-n.changed:
			n.rebuild()
		case <-timer.C:
			n.rebuild()
			n.notify()
		case <-n.clockCh:
			n.judgeClock()
		}
	}
}

// armForNextChange sets timer to fire at the next announced instant, or in
// an hour when none is announced.
func (n *Node) armForNextChange(timer *time.Timer) {
	wait := time.Hour
	now := n.now()
	for _, c := range n.sched.Load().Changes() {
		if c.After(now) {
			wait = c.Sub(now)
			break
		}
	}
	timer.Reset(wait)
}

// rebuild recomputes peers and the schedule from memberlist's member list
// and the tombstones. If the schedule changed it re-advertises this node's
// digest and notifies observers. It is called from the event loop and from
// the state transitions.
func (n *Node) rebuild() {
	n.rebuildMu.Lock()
	defer n.rebuildMu.Unlock()
	now := n.now()
	n.membersMu.Lock()
	members := make([]member, 0, len(n.members))
	for _, m := range n.members {
		members = append(members, m)
	}
	tombs := make([]tomb, 0, len(n.tombs))
	for name, t := range n.tombs {
		if !t.until.After(now) {
			delete(n.tombs, name)
			continue
		}
		tombs = append(tombs, t)
	}
	n.membersMu.Unlock()
	n.mu.Lock()
	selfState, selfSince, selfUntil, selfDisc := n.state, n.since, n.until, n.disc
	selfQuarantines := slices.Clone(n.quarantines)
	n.mu.Unlock()

	peers := make([]Peer, 0, len(members))
	spans := make([]span, 0, len(members)+len(tombs))
	for _, m := range members {
		p := Peer{Name: m.name, Addr: m.addr, Self: m.name == n.cfg.Name}
		if p.Self {
			p.State, p.HTTPAddr, p.Version, p.Started, p.Weight = selfState, n.cfg.HTTPAddr, n.cfg.Version, n.started, n.cfg.Weight
			p.Since, p.Until, p.Discovery, p.Plan, p.Quarantines = selfSince, selfUntil, selfDisc, n.planRef(), selfQuarantines
		} else if meta, err := n.cache.meta(n, m.name, m.meta); err == nil {
			p.State, p.HTTPAddr, p.Version, p.Digest, p.Started, p.Weight = meta.State, meta.HTTPAddr, meta.Version, meta.Digest, meta.Started, meta.Weight
			p.Since, p.Until, p.Discovery, p.Plan, p.Quarantines, p.InFlight = meta.Since, meta.Until, meta.Discovery, meta.Plan, meta.Quarantines, meta.InFlight
		}
		peers = append(peers, p)
		if sp, ok := spanOf(p); ok {
			spans = append(spans, sp)
		}
	}
	for _, t := range tombs {
		spans = append(spans, span{member: ring.Member{Name: t.name, Weight: t.weight}, from: t.since, to: t.until})
	}
	n.cache.forget(members)
	sched, err := n.cache.schedule(spans, n.planSpans(now), now)
	if err != nil {
		// memberlist names are unique and weights were validated on decode.
		n.logger.Error("building ring failed, keeping the previous one", "err", err)
		return
	}
	old := n.sched.Swap(sched)
	for i := range peers {
		if peers[i].Self {
			peers[i].Digest = sched.FinalPlacement().Digest()
		}
	}
	slices.SortFunc(peers, func(a, b Peer) int { return cmpString(a.Name, b.Name) })
	oldPeers := n.peers.Swap(&peers)
	leaderChanged := n.updateLeader(peers, now)

	if old.Digest() == sched.Digest() {
		switch {
		case leaderChanged || !sameDiscovery(*oldPeers, peers):
			n.notify()
		case !samePlans(*oldPeers, peers):
			// A peer advertises another plan: only the planner acts on it
			// (it fetches and installs the plan, which changes the
			// schedule and pokes everyone). Poking the scrape filter now
			// would spend its rate-limited pass on nothing and delay the
			// one the install needs by up to a second.
			n.notifyPlans()
		}
		return
	}
	n.rememberReplaced(old, sched, now)
	n.metrics.ringChanges.Inc()
	n.logger.Debug("ring changed", "members", sched.Final().Len(), "changes", len(sched.Changes()),
		"digest", fmt.Sprintf("%016x", sched.Final().Digest()))
	n.notify()
	// Advertise the new digest. Peers react to our metadata update by
	// refreshing their view of us, not by changing their ring, so this does
	// not loop.
	n.readvertise()
}

// sameDiscovery tells whether two sorted peer lists advertise the same
// discovery.
func sameDiscovery(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool {
		return x.Name == y.Name && x.Discovery == y.Discovery && slices.Equal(x.Quarantines, y.Quarantines)
	})
}

// notify pokes the observers: the view or the peers changed. Observers read
// them with View and Peers from their own goroutines.
func (n *Node) notify() {
	n.mu.Lock()
	observers := slices.Concat(n.observers, n.planObservers)
	n.mu.Unlock()
	for _, o := range observers {
		o.Notify()
	}
}

// notifyPlans pokes the plan observers only.
func (n *Node) notifyPlans() {
	n.mu.Lock()
	observers := slices.Clone(n.planObservers)
	n.mu.Unlock()
	for _, o := range observers {
		o.Notify()
	}
}

// spanOf returns the part of time in which p owns keys; ok is false when it
// owns none (joining, unreadable metadata, leaving at once).
func spanOf(p Peer) (span, bool) {
	sp := span{member: ring.Member{Name: p.Name, Weight: p.Weight}}
	switch p.State {
	case StateActive:
		sp.from = p.Since
	case StateLeaving:
		if p.Until.IsZero() {
			return span{}, false
		}
		sp.from, sp.to = p.Since, p.Until
	default:
		return span{}, false
	}
	return sp, true
}

// tomb is a member gone from memberlist that still owns keys until a
// time it announced.
type tomb struct {
	name         string
	weight       float64
	since, until time.Time
}

// member is a copy of what memberlist knows about an alive member.
type member struct {
	name, addr string
	meta       []byte
}

// untrack forgets a member that left or died and returns the state it last
// announced; called from memberlist callbacks. A member that left while it
// still owned keys (leaving with Until ahead: a restart grace, or a handoff
// cut short) stays in the schedule until Until as a tombstone.
func (n *Node) untrack(node *memberlist.Node) State {
	n.idents.mu.Lock()
	defer n.idents.mu.Unlock()
	n.forgetClaim(node.Name)
	n.membersMu.Lock()
	last := n.members[node.Name]
	delete(n.members, node.Name)
	now := n.now()
	meta, _ := decodeMeta(last.meta, now, n.cfg.HandoffLead)
	if meta.State == StateLeaving && meta.Until.After(now) {
		n.tombs[node.Name] = tomb{name: node.Name, weight: meta.Weight, since: meta.Since, until: meta.Until}
	}
	n.membersMu.Unlock()
	if meta.State != StateLeaving {
		// Before signal: the ring without the member comes after.
		n.recordFailure(node.Name, meta.Digest, meta.InFlight, now)
	}
	n.clocks.forget(node.Name)
	n.signal()
	return meta.State
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

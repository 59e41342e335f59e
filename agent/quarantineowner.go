package agent

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/scrape"
)

// quarantineOwner is the scrape Owner: the discovery-aware placement
// (discovery) minus the targets held in quarantine (see quarantine.go).
type quarantineOwner struct {
	cfg    QuarantineConfig
	node   *gossip.Node
	base   *discovery
	logger *slog.Logger
	// discovered is what the filter's last pass found; targets lists the
	// same targets with their URLs (costlier: it relabels them all).
	discovered func() scrape.Discovered
	targets    func() []scrape.TargetInfo
	// inFlight lists the scrapes in progress for longer than d (the scrape
	// manager's InFlight).
	inFlight func(d time.Duration, limit int) []uint64
	poke     func() // re-run the filter: ownership may have changed

	wake chan struct{} // capacity 1: refresh wanted

	state atomic.Pointer[quarantineState]

	mu      sync.Mutex // guards learned, learnedGen
	learned map[uint64][]qEvent
	// learnedGen counts the changes to learned.
	learnedGen uint64

	// lastCaught is the newest failure nameCaught logged (run's goroutine).
	lastCaught time.Time

	held  prometheus.Gauge
	total prometheus.Counter
}

// quarantineState is an immutable snapshot the ownership calls read.
type quarantineState struct {
	// version is the gossip.Node.FailuresVersion the holds were derived
	// from; a newer one means failures not judged yet (see holdsOf).
	version uint64
	// learnedGen and targets are the other inputs: the holds learned from
	// peers and the discovered targets' digest.
	learnedGen, targets uint64
	// next is the first instant after the state was built at which a hold
	// begins or ends (zero: none).
	next time.Time
	// holds of every discovered target that has any.
	holds map[uint64][]qHold
	// changes are the instants holds begin and end.
	changes []time.Time
	// now lists the holds in effect when the state was built, for the API.
	now []QuarantinedTarget
}

// QuarantinedTarget is a target held in quarantine (/api/v1/cluster/quarantine).
type QuarantinedTarget struct {
	Job   string    `json:"job"`
	URL   string    `json:"url"`
	Key   string    `json:"key"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Level counts the holds in a row; each lasts twice the one before.
	Level int `json:"level"`
	// FailedOwners are the agents that died owning the target and led to
	// the hold; empty when this agent learned the hold from a peer.
	FailedOwners []string `json:"failedOwners"`
	key          uint64
}

// maxLearned bounds the holds kept from peers' metadata.
const maxLearned = 4096

func newQuarantineOwner(cfg QuarantineConfig, node *gossip.Node, base *discovery, logger *slog.Logger, reg prometheus.Registerer) (*quarantineOwner, error) {
	q := &quarantineOwner{
		cfg: cfg, node: node, base: base, logger: logger.With("component", "quarantine"),
		discovered: func() scrape.Discovered { return nil },
		targets:    func() []scrape.TargetInfo { return nil },
		inFlight:   func(time.Duration, int) []uint64 { return nil },
		poke:       func() {},
		wake:       make(chan struct{}, 1),
		learned:    map[uint64][]qEvent{},
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_targets_quarantined",
			Help: "Discovered targets held in quarantine now: scraped by no agent because agents kept dying while they owned them (see /api/v1/cluster/quarantine)."}),
		total: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_target_quarantines_total",
			Help: "Holds of a target in quarantine that began, decided here or learned from a peer."}),
	}
	for _, c := range []prometheus.Collector{q.held, q.total} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	q.state.Store(&quarantineState{holds: map[uint64][]qHold{}})
	return q, nil
}

var (
	_ scrape.Owner       = (*quarantineOwner)(nil)
	_ scrape.Predecessor = (*quarantineOwner)(nil)
)

// OwnsAt implements scrape.Owner: the placement's answer, unless the target
// is held at t or less than holdLookback before a hold.
func (q *quarantineOwner) OwnsAt(key uint64, t time.Time) bool {
	// The placement first: a failure is recorded before the ring without
	// the failed member, so if this sees the new ring, holdsOf sees the
	// failure.
	if !q.base.OwnsAt(key, t) {
		return false
	}
	if !q.cfg.enabled() {
		return true
	}
	_, held := heldBack(q.holdsOf(key), t, holdLookback)
	return !held
}

// holdsOf returns key's holds. Between a failure and the refresh that
// judges it (the filter may re-shard first), it judges key on the spot.
func (q *quarantineOwner) holdsOf(key uint64) []qHold {
	st := q.state.Load()
	if q.node.FailuresVersion() == st.version {
		return st.holds[key]
	}
	holds, _ := q.cfg.judge(q.events(key, q.node.Failures()))
	return holds
}

// Changes implements scrape.Owner.
func (q *quarantineOwner) Changes() []time.Time {
	return mergeChanges(q.base.Changes(), q.state.Load().changes)
}

// HandedOverFrom implements scrape.Predecessor.
func (q *quarantineOwner) HandedOverFrom(key uint64, slot time.Time, within time.Duration) (string, time.Time) {
	return q.base.HandedOverFrom(key, slot, within)
}

// events are key's failures and learned holds, sorted by time. A failure
// strikes the keys the member owned, in the ring it agreed on; if it
// advertised long scrapes in flight, only those of them (caught): what it
// was busy with when it died.
func (q *quarantineOwner) events(key uint64, failures []gossip.Failure) []qEvent {
	var evs []qEvent
	for _, f := range failures {
		caught := slices.Contains(f.InFlight, key)
		if f.Agreed && f.Owned(key) && (len(f.InFlight) == 0 || caught) {
			evs = append(evs, qEvent{at: f.At, member: f.Member, caught: caught})
		}
	}
	q.mu.Lock()
	evs = append(evs, q.learned[key]...)
	q.mu.Unlock()
	slices.SortStableFunc(evs, func(a, b qEvent) int { return a.at.Compare(b.at) })
	return evs
}

// want asks for a refresh; it never blocks (a gossip observer).
func (q *quarantineOwner) want() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run refreshes the holds when gossip or discovery changed and when a hold
// ends, until ctx ends.
func (q *quarantineOwner) run(ctx context.Context) error {
	if !q.cfg.enabled() {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	fly := time.NewTicker(inFlightEvery)
	defer fly.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-fly.C:
			q.node.SetInFlight(q.inFlight(inFlightAfter, gossip.MaxInFlightAdvertised))
			continue
		case <-q.wake:
		case <-tick.C:
		}
		q.refresh()
	}
}

// A scrape in progress for longer than inFlightAfter is advertised (checked
// every inFlightEvery), so that if the agent dies now its peers know what it
// was busy with. A scrape that exhausts an agent's memory reads and parses
// for seconds (a 98 MB body: about 5 s); ordinary ones finish within a few
// hundred milliseconds, so the list is empty nearly always.
const (
	inFlightAfter = time.Second
	inFlightEvery = 250 * time.Millisecond
)

// refresh learns the holds peers advertise, judges every discovered target,
// advertises the holds in effect and pokes the filter if anything changed.
// It does nothing when no input changed and no hold began or ended since
// the last time.
func (q *quarantineOwner) refresh() {
	now := q.node.Now()
	version := q.node.FailuresVersion()
	failures := q.node.Failures()
	gen := q.learn(now)
	found := q.discovered()
	digest := found.Digest()
	prev := q.state.Load()
	if prev.version == version && prev.learnedGen == gen && prev.targets == digest && (prev.next.IsZero() || now.Before(prev.next)) {
		return
	}

	if version != prev.version {
		q.nameCaught(failures)
	}
	st := &quarantineState{version: version, learnedGen: gen, targets: digest, holds: map[uint64][]qHold{}}
	var ads []gossip.Quarantine
	if len(failures) > 0 || gen > 0 {
		for _, jt := range found {
			for _, key := range jt.Keys {
				if _, done := st.holds[key]; done {
					continue
				}
				holds, err := q.cfg.judge(q.events(key, failures))
				if err != nil || len(holds) == 0 {
					continue
				}
				st.holds[key] = holds
				for _, h := range holds {
					st.changes = append(st.changes, h.from, h.until)
				}
				if h, ok := heldAt(holds, now); ok {
					st.now = append(st.now, QuarantinedTarget{Key: digestString(key), Since: h.from, Until: h.until,
						Level: h.level, FailedOwners: append([]string{}, h.members...), key: key})
					ads = append(ads, gossip.Quarantine{Key: key, Until: h.until, Level: h.level})
				}
			}
		}
	}
	slices.SortFunc(st.changes, func(a, b time.Time) int { return a.Compare(b) })
	st.changes = slices.CompactFunc(st.changes, time.Time.Equal)
	for _, c := range st.changes {
		if c.After(now) {
			st.next = c
			break
		}
	}
	slices.SortFunc(st.now, func(a, b QuarantinedTarget) int { return cmp.Or(b.Until.Compare(a.Until), cmp.Compare(a.key, b.key)) })
	if len(st.now) > 0 || len(prev.now) > 0 {
		q.name(st.now)
	}
	// The holds that end last are the ones worth advertising.
	slices.SortFunc(ads, func(a, b gossip.Quarantine) int { return cmp.Or(b.Until.Compare(a.Until), cmp.Compare(a.Key, b.Key)) })
	q.state.Store(st)
	q.node.SetQuarantines(ads)
	q.held.Set(float64(len(st.now)))
	q.report(prev.now, st.now)
	if !slices.EqualFunc(prev.changes, st.changes, time.Time.Equal) || len(prev.holds) != len(st.holds) {
		q.poke()
	}
}

// nameCaught logs, for each failure not logged yet that advertised scrapes
// in flight, the targets it was scraping: what a dead
// agent was busy with, by URL, whether or not it leads to a hold.
func (q *quarantineOwner) nameCaught(failures []gossip.Failure) {
	seen := q.lastCaught
	var urls map[uint64]string
	for _, f := range failures {
		if !f.At.After(seen) {
			continue
		}
		q.lastCaught = f.At
		if len(f.InFlight) == 0 {
			continue
		}
		if urls == nil {
			urls = map[uint64]string{}
			for _, t := range q.targets() {
				urls[t.Key] = t.Job + " " + t.URL
			}
		}
		names := make([]string, 0, len(f.InFlight))
		for _, k := range f.InFlight {
			if u, ok := urls[k]; ok {
				names = append(names, u)
			} else {
				names = append(names, digestString(k)+" (not discovered here)")
			}
		}
		q.logger.Warn("an agent died without leaving while it scraped these targets", "member", f.Member, "targets", names, "agreed_on_ring", f.Agreed)
	}
}

// name fills in the jobs and URLs of held targets.
func (q *quarantineOwner) name(held []QuarantinedTarget) {
	byKey := map[uint64]scrape.TargetInfo{}
	for _, t := range q.targets() {
		byKey[t.Key] = t
	}
	for i := range held {
		if t, ok := byKey[held[i].key]; ok {
			held[i].Job, held[i].URL = t.Job, t.URL
		}
	}
}

// learn records the holds peers advertise that are new here, forgets
// those past probation, and returns learnedGen.
func (q *quarantineOwner) learn(now time.Time) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for k, evs := range q.learned {
		kept := slices.DeleteFunc(slices.Clone(evs), func(e qEvent) bool { return e.until.Add(q.cfg.Window).Before(now) })
		if len(kept) != len(evs) {
			q.learnedGen++
		}
		if len(kept) == 0 {
			delete(q.learned, k)
			continue
		}
		q.learned[k] = kept
		n += len(kept)
	}
	for _, p := range q.node.Peers() {
		if p.Self {
			continue
		}
		for _, a := range p.Quarantines {
			if !a.Until.After(now) || n >= maxLearned {
				continue
			}
			if slices.ContainsFunc(q.learned[a.Key], func(e qEvent) bool { return e.until.Equal(a.Until) && e.level == a.Level }) {
				continue
			}
			q.learned[a.Key] = append(q.learned[a.Key], qEvent{at: now, until: a.Until, level: a.Level})
			q.learnedGen++
			n++
		}
	}
	return q.learnedGen
}

// report logs and counts the holds that began and ended.
func (q *quarantineOwner) report(prev, cur []QuarantinedTarget) {
	was := map[uint64]QuarantinedTarget{}
	for _, t := range prev {
		was[t.key] = t
	}
	for _, t := range cur {
		if p, ok := was[t.key]; ok && p.Since.Equal(t.Since) {
			delete(was, t.key)
			continue
		}
		delete(was, t.key)
		q.total.Inc()
		q.logger.Warn("target quarantined: agents died while they owned it, no agent scrapes it until the hold ends",
			"job", t.Job, "url", t.URL, "failed_owners", t.FailedOwners, "until", t.Until, "level", t.Level)
	}
	for _, t := range was {
		q.logger.Info("target released from quarantine: its owner scrapes it again", "job", t.Job, "url", t.URL)
	}
}

// quarantined returns the holds in effect at the last refresh, the longest
// first.
func (q *quarantineOwner) quarantined() []QuarantinedTarget { return slices.Clone(q.state.Load().now) }

// heldUntil returns when key's hold ends if it is held at t.
func (q *quarantineOwner) heldUntil(key uint64, t time.Time) (time.Time, bool) {
	if !q.cfg.enabled() {
		return time.Time{}, false
	}
	h, ok := heldAt(q.holdsOf(key), t)
	return h.until, ok
}

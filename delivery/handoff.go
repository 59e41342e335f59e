package delivery

import (
	"context"
	"sync"
	"time"
)

// Ordering a target's samples across agents.
//
// When a target changes owner, the old owner's last samples of it and the
// new owner's first ones travel in two queues. If the old owner is behind
// (the receiver was down, its batch is not sent yet), the new owner's newer
// samples can reach the receiver first, and a strict receiver then refuses
// the old owner's older ones as out of order: they are lost. So the new
// owner writes a handoff record into its queue before its first samples of
// a taken-over target, and its sender, on reaching the record, waits until
// the previous owner reports that it has delivered every sample older than
// that first sample. Everything queued behind the record waits with it: the
// queue is strictly ordered.
//
// An agent reports how far it has delivered with DeliveredThrough: a time T
// such that every sample with a timestamp before T that it has written or
// will write to the endpoint's queue has been acknowledged. It is tracked
// with marks: every markInterval the storage notes, per endpoint, the
// queue's end and the oldest time any commit still being appended can carry
// (the earliest start of an open appender, or now); once the acknowledged
// position passes a mark's end, everything older than its time is
// delivered. After a restart nothing is known until the first mark is
// passed, which is when the backlog from before the restart is delivered.
//
// This relies on a commit's samples being no older than markSlack before
// its appender was opened, which is how the scrape loop appends. A commit
// with older samples (Prometheus' end-of-run staleness markers carry the
// previous slot's time) lowers the marks it could contradict.

const (
	markInterval = 250 * time.Millisecond
	// markSlack covers the time between the scrape loop taking a sample
	// timestamp and opening its appender (timestamp alignment, scheduling).
	markSlack = time.Second
	// maxMarks bounds the marks kept while the endpoint does not
	// acknowledge (an outage): past it every other mark is dropped, which
	// only makes the answer more conservative.
	maxMarks = 1024
	// holdPoll is how often a waiting sender asks the previous owner.
	holdPoll = 500 * time.Millisecond
	// holdLogAfter is how long a hold lasts before it is logged: every
	// handoff holds briefly while the old owner's last batch goes out.
	holdLogAfter = 5 * time.Second
	// goneAfter is how long a previous owner known not to be blocked
	// fails to answer before it is taken for gone (crashed, left, cut
	// off): one failed question is not enough on a loaded machine.
	goneAfter = time.Second
	// holdMax bounds a hold on a previous owner that keeps failing to
	// reach the receiver: past it, this agent's queue (bounded by
	// --storage.max-size) matters more.
	holdMax = time.Hour
)

// Predecessors answers, for a sender holding a handoff record, how far the
// agent that owned the target before has delivered.
type Predecessors interface {
	// DeliveredThrough asks peer how far it has delivered to its
	// remote_write endpoint named endpoint. An error means it cannot be
	// asked now (absent, restarting): the sender asks again.
	DeliveredThrough(ctx context.Context, peer, endpoint string) (PeerDelivery, error)
}

// PeerDelivery is a previous owner's answer.
type PeerDelivery struct {
	// Found is false when the peer has no such endpoint, or cannot be
	// asked and never will be (its API needs credentials): there is
	// nothing to wait for.
	Found bool
	// Through: every sample the peer scraped with an earlier timestamp has
	// been acknowledged.
	Through time.Time
	// Blocked is true while the peer cannot get further for reasons not
	// its own: its last attempt to send failed (an outage, which stalls
	// everyone), or it is itself holding for another previous owner. That
	// time does not count as its lack of progress.
	Blocked bool
	// Acked is how far the peer's queue is acknowledged (its
	// EndpointStatus.Acknowledged); while it grows the peer makes
	// progress, even when Through does not move (after a restart Through
	// is unknown until the backlog from before it is delivered, which
	// after a long outage takes a while). Zero: not reported.
	Acked uint64
}

// mark says: once the queue is acknowledged up to end, every sample older
// than through is delivered.
type mark struct {
	end     uint64
	through int64 // unix ms
}

// marks are an endpoint's marks, oldest first.
type marks struct {
	mu   sync.Mutex
	list []mark
}

// add notes a mark at the queue's current end. The end is read under the
// marks' lock, so a commit that lowers the marks after writing its record
// lowers this one too if it was read before the record.
func (m *marks) add(q *queue, through int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addEnd(q.end(), through)
}

// addEnd is add with the end given; the caller holds m.mu (or owns m).
func (m *marks) addEnd(end uint64, through int64) {
	if n := len(m.list); n > 0 && m.list[n-1].end == end {
		m.list[n-1].through = max(m.list[n-1].through, through)
		return
	}
	if len(m.list) >= maxMarks {
		kept := m.list[:0]
		for i, x := range m.list {
			if i%2 == 1 || i == len(m.list)-1 {
				kept = append(kept, x)
			}
		}
		m.list = kept
	}
	m.list = append(m.list, mark{end: end, through: through})
}

// lower makes every mark claim at most t: a commit just queued holds a
// sample that old.
func (m *marks) lower(t int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.list {
		m.list[i].through = min(m.list[i].through, t)
	}
}

// through is the time of the latest mark at or before acked, 0 if none;
// older marks are forgotten.
func (m *marks) through(acked uint64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.list) && m.list[i].end <= acked {
		i++
	}
	if i == 0 {
		return 0
	}
	t := m.list[i-1].through
	m.list = m.list[i-1:]
	return t
}

// openAppenders tracks the appenders not yet committed or rolled back and
// when each was opened, for the marks.
type openAppenders struct {
	mu   sync.Mutex
	open map[*appender]int64 // unix ms
}

func (o *openAppenders) add(a *appender, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.open == nil {
		o.open = map[*appender]int64{}
	}
	o.open[a] = now.UnixMilli()
}

func (o *openAppenders) remove(a *appender) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.open, a)
}

// committedThrough is a time before which no sample can still be appended:
// the earliest open appender's start, or now, less markSlack.
func (o *openAppenders) committedThrough(now time.Time) int64 {
	t := now.UnixMilli()
	o.mu.Lock()
	for _, s := range o.open {
		t = min(t, s)
	}
	o.mu.Unlock()
	return t - markSlack.Milliseconds()
}

// mark notes every endpoint's queue end against what has been committed.
// The time is taken before the ends: a commit finishing in between is then
// counted as maybe not yet delivered, never the other way round.
func (s *Storage) mark(now time.Time) {
	c := s.open.committedThrough(now)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.endpoints {
		e.marks.add(e.q, c)
	}
}

// DeliveredThrough reports how far the endpoint named name has delivered:
// every sample with an earlier timestamp this storage has written or will
// write to it has been acknowledged. The zero time means nothing is known
// yet (the backlog from before a restart is still going out); found is
// false without such an endpoint.
func (s *Storage) DeliveredThrough(name string) (through time.Time, found bool) {
	c := s.open.committedThrough(time.Now())
	s.mu.RLock()
	var e *endpoint
	for _, x := range s.endpoints {
		if x.name == name {
			e = x
		}
	}
	s.mu.RUnlock()
	if e == nil {
		return time.Time{}, false
	}
	end := e.q.end()
	acked := e.acked.Load()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed && acked >= end {
		// Stopped with everything delivered: it writes nothing more.
		return forever, true
	}
	if acked >= end {
		// Everything queued is acknowledged; what comes next is newer than c.
		return time.UnixMilli(c), true
	}
	if t := e.marks.through(acked); t > 0 {
		return time.UnixMilli(t), true
	}
	return time.Time{}, true
}

// HandedOver implements scrape.HandoffAppender: the commit is this agent's
// first scrape of a target that from scraped until at.
func (a *appender) HandedOver(from string, at time.Time) { a.from, a.fromAt = from, at }

// handoff is a handoff record read from the queue.
type handoff struct {
	from string
	t    int64 // unix ms: when from stopped writing the target
	next uint64
}

// handoffMargin is added to the instant the previous owner stopped writing
// a target: its last scrape's slot was before the instant, its timestamp
// may be a timer's jitter after it.
const handoffMargin = 100 * time.Millisecond

// settled is what a hold learnt about a previous owner: records naming it
// with a first sample up to through need no wait. Only the sender's
// goroutine uses it.
type settled struct {
	through time.Time
	result  holdResult
}

// settle records how a hold on from ended: delivered up to what it
// reported; given up (or nothing to wait for) for everything up to now,
// which covers the other targets of the same takeover.
func (e *endpoint) settle(from string, result holdResult, through, now time.Time) {
	if e.settled == nil {
		e.settled = map[string]settled{}
	}
	if result != holdDelivered {
		through = now
	}
	if k, ok := e.settled[from]; !ok || through.After(k.through) {
		e.settled[from] = settled{through: through, result: result}
	}
}

// holdResult is why a hold ended, the label of the holds metric.
type holdResult string

const (
	holdDelivered holdResult = "delivered"   // the previous owner caught up
	holdNoQueue   holdResult = "no_endpoint" // it has no such endpoint, or cannot be asked
	holdAbandoned holdResult = "abandoned"   // it made no progress for --storage.remote.handoff-wait
	holdGone      holdResult = "gone"        // it cannot be asked and had no backlog when last heard of
	holdDisabled  holdResult = "disabled"    // holds are off
)

// await holds the sender at a handoff record until the previous owner has
// delivered what it scraped before h.t, or has made no progress for the
// hold timeout while it could have (it was absent, or it reached the
// receiver without getting further), or holdMax has passed. It returns
// false when ctx ends first.
func (e *endpoint) await(ctx context.Context, h handoff) bool {
	preds, wait := e.preds, e.holdWait
	if preds == nil || wait <= 0 {
		e.m.holds.WithLabelValues(e.name, string(holdDisabled)).Inc()
		return true
	}
	want := time.UnixMilli(h.t).Add(handoffMargin)
	// A takeover of several targets queues a record per target, all naming
	// the same agent: what was learnt for the first settles the others.
	if k, ok := e.settled[h.from]; ok && !want.After(k.through) {
		e.m.holds.WithLabelValues(e.name, string(k.result)).Inc()
		return true
	}
	start := time.Now()
	progress, best, bestAcked := start, time.Time{}, uint64(0)
	logged := false
	e.holding.Store(&h.from)
	defer func() {
		e.holding.Store(nil)
		e.m.holdSeconds.WithLabelValues(e.name).Add(time.Since(start).Seconds())
	}()
	var failing time.Time // since when every question failed; zero: the last one was answered
	for {
		ans, err := preds.DeliveredThrough(ctx, h.from, e.name)
		now := time.Now()
		gone := false
		if err != nil {
			// Gone (it left, crashed, or is cut off): what it said while
			// it could. Only one that was failing to send when last heard
			// of has a backlog worth waiting for (it left or crashed in an
			// outage and may come back with it); the time counts. Otherwise
			// it is not waited for: a crashed agent's last batch is at most
			// a slot, and in a partition a hold would delay this agent's
			// own targets behind the cut-off side's newer samples of them.
			// One failed question is not gone: it is asked again for
			// goneAfter. One the watcher never asked (this agent restarted
			// since it queued the record) may be restarting too: it is
			// asked again for the hold timeout.
			if failing.IsZero() {
				failing = now
			}
			k, ok, watched := e.watch.answer(h.from, e.name)
			if ok {
				ans, err = k, nil
			}
			if !ok || !k.Blocked {
				grace := goneAfter
				if !watched {
					grace = wait
				}
				gone = now.Sub(failing) >= grace
				if !gone {
					progress = now // not its lack of progress: it could not be asked yet
				}
			}
			ans.Blocked = false
		} else {
			failing = time.Time{}
		}
		var result holdResult
		switch {
		case gone && (err != nil || ans.Through.Before(want)):
			result = holdGone
		case err == nil && !ans.Found:
			result = holdNoQueue
		case err == nil && !ans.Through.Before(want):
			result = holdDelivered
		case err == nil && ans.Through.After(best):
			best, progress = ans.Through, now
		case err == nil && ans.Acked > bestAcked:
			progress = now // it is delivering its backlog
		case err == nil && ans.Blocked:
			progress = now // an outage, or it waits in turn
		}
		if err == nil {
			bestAcked = max(bestAcked, ans.Acked)
		}
		if result == "" && (now.Sub(progress) >= wait || now.Sub(start) >= holdMax) {
			result = holdAbandoned
		}
		if result != "" {
			e.m.holds.WithLabelValues(e.name, string(result)).Inc()
			e.settle(h.from, result, ans.Through, now)
			switch {
			case result == holdGone:
				e.logger.Warn("Sending a taken-over target's samples without waiting for its previous owner, which cannot be asked (crashed, left or cut off) and was not failing to send when last heard of; if it still delivers older samples of the target, a strict receiver may refuse them as out of order",
					"endpoint", e.name, "previous_owner", h.from, "waited", now.Sub(start).Round(time.Millisecond), "needed", want, "last_error", err)
			case result == holdAbandoned:
				e.logger.Warn("Sending a taken-over target's samples without waiting any longer for its previous owner, which made no progress; a strict receiver may refuse the previous owner's older samples of it as out of order",
					"endpoint", e.name, "previous_owner", h.from, "waited", now.Sub(start).Round(time.Millisecond), "its_delivered_through", best, "needed", want, "last_error", err)
			case logged:
				e.logger.Info("The previous owner of a taken-over target caught up; sending", "endpoint", e.name, "previous_owner", h.from, "waited", now.Sub(start).Round(time.Millisecond))
			}
			return true
		}
		if !logged && now.Sub(start) >= holdLogAfter {
			logged = true
			e.logger.Info("Holding delivery until the previous owner of a taken-over target has delivered its older samples of it (a strict receiver would refuse them after ours)",
				"endpoint", e.name, "previous_owner", h.from, "its_delivered_through", best, "needed", want, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(holdPoll):
		}
	}
}

// forever is the delivered-through time of a storage that is closed with
// everything acknowledged.
var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// watcher asks the previous owners of targets just taken over how far they
// delivered, from the moment the takeover is queued, and keeps their last
// answers: a leaving agent answers only until it exits, which is often
// before the sender reaches the handoff record.
type watcher struct {
	preds Predecessors
	wait  time.Duration

	mu      sync.Mutex
	wanted  map[string]time.Time               // peer -> latest instant asked about
	failing map[string]time.Time               // peer -> since when it cannot be asked
	seen    map[string]bool                    // every peer ever added
	known   map[string]map[string]PeerDelivery // peer -> endpoint -> last answer
}

func newWatcher(p Predecessors, wait time.Duration) *watcher {
	return &watcher{preds: p, wait: wait, wanted: map[string]time.Time{}, failing: map[string]time.Time{}, seen: map[string]bool{}, known: map[string]map[string]PeerDelivery{}}
}

// add asks for peer to be watched until it has delivered up to at.
func (w *watcher) add(peer string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[peer] = true
	if at.After(w.wanted[peer]) {
		w.wanted[peer] = at
	}
}

// answer is peer's last answer for endpoint; watched is false when this
// watcher was never asked about peer (the takeover was queued before this
// agent started).
func (w *watcher) answer(peer, endpoint string) (a PeerDelivery, ok, watched bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok = w.known[peer][endpoint]
	_, wanted := w.wanted[peer]
	_, failing := w.failing[peer]
	return a, ok, ok || wanted || failing || w.seen[peer]
}

// run asks every watched peer every holdPoll, for the endpoints names
// returns, until ctx ends. A peer is watched until it delivered up to what
// was asked on every endpoint, or could not be asked for twice the wait.
func (w *watcher) run(ctx context.Context, names func() []string) {
	if w.preds == nil || w.wait <= 0 {
		return
	}
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		peers := make(map[string]time.Time, len(w.wanted))
		for p, at := range w.wanted {
			peers[p] = at
		}
		w.mu.Unlock()
		for peer, at := range peers {
			w.poll(ctx, peer, at, names())
		}
	}
}

func (w *watcher) poll(ctx context.Context, peer string, at time.Time, names []string) {
	done := true
	for _, ep := range names {
		ans, err := w.preds.DeliveredThrough(ctx, peer, ep)
		w.mu.Lock()
		if err != nil {
			done = false
			if _, ok := w.failing[peer]; !ok {
				w.failing[peer] = time.Now()
			}
			if time.Since(w.failing[peer]) > 2*w.wait {
				done = true // gone for good: the senders give up on their own
			}
			w.mu.Unlock()
			continue
		}
		delete(w.failing, peer)
		if w.known[peer] == nil {
			w.known[peer] = map[string]PeerDelivery{}
		}
		if prev, ok := w.known[peer][ep]; !ok || !ans.Through.Before(prev.Through) {
			w.known[peer][ep] = ans
		}
		w.mu.Unlock()
		if ans.Found && ans.Through.Before(at.Add(handoffMargin)) {
			done = false
		}
	}
	if done {
		w.mu.Lock()
		if !w.wanted[peer].After(at) {
			delete(w.wanted, peer)
			delete(w.failing, peer)
		}
		w.mu.Unlock()
	}
}

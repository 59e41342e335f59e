package scrape

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
)

// fence sits between the scrape engine and storage and keeps a scrape's
// samples only if this agent owns the target at the scrape's slot.
//
// The Filter decides which scrape loops run; it runs a loop a little longer
// than ownership lasts (until an in-flight scrape has finished) and starts it
// a little before ownership begins (so the first owned slot is not missed).
// The fence makes that overlap harmless: during an announced handoff both the
// old and the new owner scrape the target, and exactly one of them writes
// each slot, because both judge the slot's nominal instant against the same
// schedule. The result is one sample per slot across the handoff: no gap, no
// duplicate, and no out-of-order sample for a strict receiver.
//
// A slot's nominal instant is where Prometheus aims the scrape: the target's
// phase within the interval, (hash(target) XOR seed) mod interval, with the
// cluster-wide seed (Options.PhaseSeed). Judging the nominal instant rather
// than the sample's timestamp keeps two agents from disagreeing when a
// handoff instant falls within a timer's jitter of a scrape.
type fence struct {
	owner Owner
	next  storage.AppendableV2
	fqdn  string        // the phase seed's host part; empty: judge raw timestamps
	seed  atomic.Uint64 // Prometheus' offset seed, set by setExternalLabels
	// shift is added to every sample's timestamp, in milliseconds
	// (Options.TimestampShift); 0 outside tests.
	shift int64

	// handed is, per key taken over from another agent, the change instant
	// the storage was told about, so that it is told once per change.
	mu     sync.Mutex
	handed map[uint64]time.Time

	// flying are the scrapes in progress, by key (see InFlight), timed by
	// now.
	flyMu  sync.Mutex
	flying map[uint64]inFlight

	kept, dropped prometheus.Counter

	// loads counts the samples of kept scrapes per target (load.go).
	loads *loads
	// now is the agent's clock.
	now func() time.Time
}

// handoffWindow, in scrape intervals, is how long after a change of owner
// the new owner's first kept scrape still counts as the first after the
// handoff (its scrape loop may start a slot or two late).
const handoffWindow = 3

func newFence(owner Owner, next storage.AppendableV2, fqdn string, reg prometheus.Registerer) (*fence, error) {
	f := &fence{
		owner:  owner,
		next:   next,
		fqdn:   fqdn,
		loads:  newLoads(),
		flying: map[uint64]inFlight{},
		now:    time.Now,
		kept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_fence_scrapes_kept_total",
			Help: "Scrapes whose samples were written because this agent owns the target at the scrape's slot.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_fence_scrapes_dropped_total",
			Help: "Scrapes whose samples were discarded because another agent owns the target at the scrape's slot (the overlap of a handoff).",
		}),
	}
	f.setExternalLabels(labels.EmptyLabels())
	if reg != nil {
		for _, c := range []prometheus.Collector{f.kept, f.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register fence metrics: %w", err)
			}
		}
	}
	return f, nil
}

// setExternalLabels recomputes the offset seed the way Prometheus' scrape
// manager does (manager.go, setOffsetSeed): FNV-1a of the host name followed
// by the external labels.
func (f *fence) setExternalLabels(ext labels.Labels) {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s%s", f.fqdn, ext.String())
	f.seed.Store(h.Sum64())
}

// AppenderV2 implements storage.AppendableV2. Appenders that do not come
// from a scrape loop (no target in ctx) pass through.
func (f *fence) AppenderV2(ctx context.Context) storage.AppenderV2 {
	app := f.next.AppenderV2(ctx)
	t, ok := promscrape.TargetFromContext(ctx)
	if !ok {
		return app
	}
	// Prometheus takes a scrape's appender before it sends the request and
	// commits it after appending the samples: in between, the scrape is in
	// flight.
	key := targetKey(t, nil)
	f.takeOff(key)
	return &fencedAppender{AppenderV2: app, fence: f, target: t, key: key}
}

// inFlight is the scrapes of one target in progress: how many, and when the
// oldest began.
type inFlight struct {
	n     int
	since time.Time
}

func (f *fence) takeOff(key uint64) {
	f.flyMu.Lock()
	defer f.flyMu.Unlock()
	fl := f.flying[key]
	if fl.n == 0 {
		fl.since = f.now()
	}
	fl.n++
	f.flying[key] = fl
}

func (f *fence) land(key uint64) {
	f.flyMu.Lock()
	defer f.flyMu.Unlock()
	fl := f.flying[key]
	if fl.n <= 1 {
		delete(f.flying, key)
		return
	}
	fl.n--
	f.flying[key] = fl
}

// inFlight returns the keys of the targets whose scrape has been in
// progress for longer than d, the longest first, at most max.
func (f *fence) inFlight(d time.Duration, limit int) []uint64 {
	now := f.now()
	f.flyMu.Lock()
	type kv struct {
		key   uint64
		since time.Time
	}
	var long []kv
	for k, fl := range f.flying {
		if now.Sub(fl.since) > d {
			long = append(long, kv{k, fl.since})
		}
	}
	f.flyMu.Unlock()
	slices.SortFunc(long, func(a, b kv) int { return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.key, b.key)) })
	out := make([]uint64, 0, min(len(long), limit))
	for _, x := range long {
		if len(out) == limit {
			break
		}
		out = append(out, x.key)
	}
	return out
}

// keep reports whether the scrape of t at timestamp ms (milliseconds) is
// this agent's to write, and if so, which agent scraped the slot before
// when the target has just been handed over to this one ("" otherwise).
func (f *fence) keep(t *promscrape.Target, ms int64) (keep bool, from string, at time.Time) {
	key := targetKey(t, nil)
	slot := f.slot(t, ms)
	if !f.owner.OwnsAt(key, slot) {
		return false, "", time.Time{}
	}
	if p, ok := f.owner.(Predecessor); ok {
		iv := scrapeInterval(t)
		if from, at = p.HandedOverFrom(key, slot, handoffWindow*iv); from != "" && !f.firstSince(key, at, slot, iv) {
			from = ""
		}
	}
	return true, from, at
}

// firstSince reports whether this is the first time the fence asks about
// key's change of owner at instant at, and forgets changes past the window.
func (f *fence) firstSince(key uint64, at, slot time.Time, iv time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handed == nil {
		f.handed = map[uint64]time.Time{}
	}
	if prev, ok := f.handed[key]; ok && prev.Equal(at) {
		return false
	}
	f.handed[key] = at
	if len(f.handed) > 64 {
		for k, c := range f.handed {
			if c.Before(slot.Add(-2 * handoffWindow * iv)) {
				delete(f.handed, k)
			}
		}
	}
	return true
}

// scrapeInterval is the target's scrape interval, 0 if unknown.
func scrapeInterval(t *promscrape.Target) time.Duration {
	d, err := model.ParseDuration(t.GetValue(model.ScrapeIntervalLabel))
	if err != nil {
		return 0
	}
	return time.Duration(d)
}

// slot returns the nominal instant of the scrape slot that timestamp ms
// belongs to: the nearest instant at the target's phase. Without a phase it
// returns the timestamp itself.
func (f *fence) slot(t *promscrape.Target, ms int64) time.Time {
	ts := time.UnixMilli(ms)
	if f.fqdn == "" {
		return ts
	}
	iv := int64(scrapeInterval(t))
	if iv <= 0 {
		return ts
	}
	h, ok := targetHash(t)
	if !ok {
		return ts
	}
	phase := int64((h ^ f.seed.Load()) % uint64(iv))
	ns := ts.UnixNano()
	into := ((ns-phase)%iv + iv) % iv
	nominal := ns - into
	if into > iv/2 {
		nominal += iv
	}
	return time.Unix(0, nominal)
}

// targetLabelsField finds Target.labels, the full label set (with __address__,
// __scrape_interval__ and the like) that Prometheus hashes for the phase.
// Prometheus has no accessor for it; TestFenceSlotMatchesScrapes fails if an
// upgrade changes the field or the hash.
var targetLabelsField = sync.OnceValue(func() int {
	f, ok := reflect.TypeFor[promscrape.Target]().FieldByName("labels")
	if !ok || f.Type != reflect.TypeFor[labels.Labels]() {
		return -1
	}
	return f.Index[0]
})

// targetHash is Prometheus' Target.hash: FNV-1a of the zero-padded label set
// hash followed by the scrape URL.
func targetHash(t *promscrape.Target) (uint64, bool) {
	i := targetLabelsField()
	if i < 0 {
		return 0, false
	}
	v := reflect.ValueOf(t).Elem().Field(i)
	// The labels are set when the target is created and never changed.
	lset := *(*labels.Labels)(unsafe.Pointer(v.UnsafeAddr()))
	return phaseHash(lset.Hash(), t.URL().String()), true
}

// phaseHash is fmt.Fprintf(fnv.New64a(), "%016d", labelsHash) followed by
// the URL, without the allocations of a hash.Hash64 and of fmt: it runs on
// every scrape.
func phaseHash(labelsHash uint64, url string) uint64 {
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], labelsHash, 10)
	h := uint64(fnvOffset64)
	for range 16 - len(digits) {
		h = fnvByte(h, '0')
	}
	for _, c := range digits {
		h = fnvByte(h, c)
	}
	for i := range len(url) {
		h = fnvByte(h, url[i])
	}
	return h
}

// FNV-1a, 64 bits, as hash/fnv.New64a computes it.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime64 }

// fencedAppender drops the samples of scrapes this agent does not own. A
// scrape appends all its samples at one timestamp, so the decision is made
// once per timestamp.
type fencedAppender struct {
	storage.AppenderV2
	fence  *fence
	target *promscrape.Target
	key    uint64
	landed bool

	decided    bool
	ts         int64
	keep       bool
	kept       bool // some sample was written
	dropped    bool // some sample was discarded
	samples    int  // samples written, staleness markers aside
	handedOver bool // the storage appender was told who scraped before
}

func (a *fencedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if s := a.fence.shift; s != 0 {
		t += s
		if st != 0 {
			st += s
		}
	}
	if !a.decided || t != a.ts {
		var from string
		var at time.Time
		a.decided, a.ts = true, t
		a.keep, from, at = a.fence.keep(a.target, t)
		if from != "" && !a.handedOver {
			if h, ok := a.AppenderV2.(HandoffAppender); ok {
				h.HandedOver(from, at)
			}
			a.handedOver = true
		}
	}
	if !a.keep {
		// Pretend success and keep the caller's reference, so the scrape
		// loop's series cache and staleness tracking stay as they were.
		a.dropped = true
		return ref, nil
	}
	a.kept = true
	if !value.IsStaleNaN(v) || h != nil || fh != nil {
		a.samples++
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *fencedAppender) Commit() error {
	a.land()
	if a.kept {
		a.fence.kept.Inc()
		if a.samples > 0 {
			a.fence.loads.observe(targetKey(a.target, nil), a.samples, scrapeInterval(a.target), time.UnixMilli(a.ts))
		}
	} else if a.dropped {
		a.fence.dropped.Inc()
	}
	return a.AppenderV2.Commit()
}

func (a *fencedAppender) Rollback() error {
	a.land()
	return a.AppenderV2.Rollback()
}

// land ends the scrape's flight once.
func (a *fencedAppender) land() {
	if !a.landed {
		a.landed = true
		a.fence.land(a.key)
	}
}

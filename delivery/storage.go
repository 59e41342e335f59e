package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/shoal-dev/shoal/internal/redact"
)

// Options configure the storage.
type Options struct {
	// Dir holds one queue directory per remote_write endpoint.
	Dir string
	// MaxBytes bounds each endpoint's queue; the oldest unsent data goes
	// first, counted. 0: unlimited.
	MaxBytes uint64
	// SegmentBytes is the size of a queue file (default 8 MiB).
	SegmentBytes uint64
	// SyncInterval is how often queue files and savepoints are fsynced
	// (default 1s). A crash of the process loses nothing written; a crash
	// of the machine loses at most this much, and resends what was
	// acknowledged in it.
	SyncInterval time.Duration
	// Predecessors, when set with a positive HandoffWait, orders a taken-over
	// target's samples after its previous owner's (see handoff.go): the
	// sender waits at a handoff record until that agent has delivered its
	// older samples, or has made no progress for HandoffWait.
	Predecessors Predecessors
	HandoffWait  time.Duration
}

// Storage is an AppendableV2: each commit becomes one record in every
// endpoint's queue.
type Storage struct {
	logger *slog.Logger
	opts   Options
	lock   *os.File
	m      *metrics

	mu        sync.RWMutex // guards endpoints and epoch
	endpoints []*endpoint
	epoch     uint64
	closed    bool

	cache  seriesCache
	active activeSeries
	open   openAppenders
	watch  *watcher

	// fullSince is when the last append failed for lack of space (unix ms),
	// 0 while writes succeed.
	fullSince atomic.Int64
	lastErr   atomic.Pointer[string]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Open locks dir and starts the background sync; ApplyConfig starts the
// endpoints.
func Open(logger *slog.Logger, reg prometheus.Registerer, o Options) (*Storage, error) {
	if o.Dir == "" {
		return nil, errors.New("storage directory must not be empty")
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 8 << 20
	}
	if o.MaxBytes > 0 && o.MaxBytes < 2*o.SegmentBytes {
		return nil, fmt.Errorf("--storage.max-size must be at least %d bytes (two queue segments), got %d", 2*o.SegmentBytes, o.MaxBytes)
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	s := &Storage{logger: logger, opts: o, lock: lock}
	s.cache.init()
	s.m = newMetrics(s)
	if reg != nil {
		if err := reg.Register(s.m); err != nil {
			_ = lock.Close()
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "wal")); err == nil {
		logger.Warn("A Prometheus agent WAL from an older shoal is in the storage path and is no longer read; remove it to free space", "path", filepath.Join(o.Dir, "wal"))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.watch = newWatcher(o.Predecessors, o.HandoffWait)
	s.wg.Add(2)
	go s.background()
	go func() {
		defer s.wg.Done()
		s.watch.run(s.ctx, s.endpointNames)
	}()
	return s, nil
}

func (s *Storage) background() {
	defer s.wg.Done()
	syncT := time.NewTicker(s.opts.SyncInterval)
	defer syncT.Stop()
	gcT := time.NewTicker(10 * time.Minute)
	defer gcT.Stop()
	markT := time.NewTicker(markInterval)
	defer markT.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-markT.C:
			s.mark(now)
		case <-syncT.C:
			s.mu.RLock()
			for _, e := range s.endpoints {
				// The queue first: a savepoint synced after it points
				// into records that are on disk.
				if err := e.q.sync(); err != nil {
					s.logger.Warn("Syncing the delivery queue failed", "endpoint", e.name, "err", err)
				}
				if err := e.sp.sync(); err != nil {
					s.logger.Warn("Syncing the delivery savepoint failed; after a crash of the machine more is resent", "endpoint", e.name, "err", err)
				}
			}
			s.mu.RUnlock()
		case <-gcT.C:
			s.cache.gc()
		}
	}
}

// endpointName is the queue's name: remote_write.name, or a hash of the
// URL, so that a restart finds the same queue.
func endpointName(rw *config.RemoteWriteConfig) string {
	if rw.Name != "" {
		return rw.Name
	}
	sum := sha256.Sum256([]byte(rw.URL.String()))
	return "url-" + hex.EncodeToString(sum[:6])
}

// Validate rejects remote_write settings shoal does not implement.
func Validate(cfg *config.Config) error {
	for i, rw := range cfg.RemoteWriteConfigs {
		switch rw.ProtobufMessage {
		case "", remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType:
		default:
			return fmt.Errorf("remote_write[%d].protobuf_message: shoal sends %s or %s, got %q", i, remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType, rw.ProtobufMessage)
		}
	}
	return nil
}

// ApplyConfig starts, updates and stops endpoints. An endpoint keeps its
// queue and position across reloads while its name is the same.
func (s *Storage) ApplyConfig(cfg *config.Config) error {
	if err := Validate(cfg); err != nil {
		return err
	}
	type planned struct {
		rw     *config.RemoteWriteConfig
		name   string
		client writeClient
	}
	var plan []planned
	seen := map[string]bool{}
	for _, rw := range cfg.RemoteWriteConfigs {
		name := endpointName(rw)
		if seen[name] {
			return fmt.Errorf("remote_write: two endpoints share the queue name %q; give them distinct names", name)
		}
		seen[name] = true
		c, err := newClient(name, rw)
		if err != nil {
			return fmt.Errorf("remote_write %q: %w", name, err)
		}
		plan = append(plan, planned{rw, name, c})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("storage is closed")
	}
	old := map[string]*endpoint{}
	for _, e := range s.endpoints {
		old[e.name] = e
	}
	var next []*endpoint
	for _, p := range plan {
		if e, ok := old[p.name]; ok {
			e.mu.Lock()
			e.cfg, e.client, e.ext = p.rw, p.client, cfg.GlobalConfig.ExternalLabels
			e.url = shownURL(p.rw)
			e.mu.Unlock()
			delete(old, p.name)
			next = append(next, e)
			continue
		}
		e, err := s.openEndpoint(p.name, p.rw, p.client, cfg.GlobalConfig.ExternalLabels)
		if err != nil {
			for _, n := range next {
				if !contains(s.endpoints, n) { // opened by this call
					n.stop(s.logger)
				}
			}
			return err
		}
		next = append(next, e)
	}
	for _, e := range old {
		s.logger.Info("remote_write endpoint removed; its unsent queue stays on disk and is sent if it comes back", "endpoint", e.name, "dir", e.q.dir)
		e.stop(s.logger)
	}
	s.endpoints = next
	s.epoch++
	return nil
}

func contains(es []*endpoint, e *endpoint) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

func (s *Storage) openEndpoint(name string, rw *config.RemoteWriteConfig, c writeClient, ext labels.Labels) (*endpoint, error) {
	dir := filepath.Join(s.opts.Dir, "queue", nameRE.ReplaceAllString(name, "_"))
	q, err := openQueue(dir, s.opts.SegmentBytes, s.opts.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("open delivery queue %s: %w", dir, err)
	}
	sp, pos, err := openSavepoint(filepath.Join(dir, "savepoint"))
	if err != nil {
		_ = q.close()
		return nil, fmt.Errorf("open savepoint in %s: %w", dir, err)
	}
	end := q.end()
	if pos.acked > end {
		pos.acked = end
	}
	if pos.inflight > end {
		pos.inflight = end
	}
	q.acked = pos.acked
	e := &endpoint{
		name: name, url: shownURL(rw), logger: s.logger, q: q, sp: sp, m: s.m,
		cfg: rw, client: c, ext: ext, start: pos,
		drain: make(chan struct{}), done: make(chan struct{}),
		preds: s.opts.Predecessors, holdWait: s.opts.HandoffWait, watch: s.watch,
	}
	// Everything in the queue now was committed before this start.
	e.marks.add(q, time.Now().Add(-markSlack).UnixMilli())
	e.acked.Store(pos.acked)
	// Counters exist from the start, so that rate() and alerts see their
	// first increase.
	for _, c := range []*prometheus.CounterVec{s.m.sent, s.m.bytes, s.m.failed, s.m.retried} {
		c.WithLabelValues(name, e.url)
	}
	for _, reason := range []string{"disk_full", "write_error"} {
		s.m.dropped.WithLabelValues(name, reason)
	}
	for _, r := range []holdResult{holdDelivered, holdNoQueue, holdAbandoned, holdGone, holdDisabled} {
		s.m.holds.WithLabelValues(name, string(r))
	}
	s.m.holdSeconds.WithLabelValues(name)
	if bytes, samples := q.stats(pos.acked); bytes > 0 {
		s.logger.Info("Resuming delivery from the savepoint", "endpoint", name, "unsent_bytes", bytes, "unsent_samples_at_most", samples)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(ctx)
	return e, nil
}

func (e *endpoint) stop(logger *slog.Logger) {
	e.cancel()
	<-e.done
	if err := e.q.close(); err != nil {
		logger.Warn("Closing the delivery queue failed", "endpoint", e.name, "err", err)
	}
	if err := e.sp.close(); err != nil {
		logger.Warn("Closing the delivery savepoint failed", "endpoint", e.name, "err", err)
	}
}

// AppenderV2 implements storage.AppendableV2.
func (s *Storage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	now := time.Now()
	a := &appender{s: s, opened: now.UnixMilli()}
	if t, ok := promscrape.TargetFromContext(ctx); ok {
		a.source = t
	}
	s.open.add(a, now)
	return a
}

// Health is nil while the queue can be written, else why not and what to do.
func (s *Storage) Health() error {
	if since := s.fullSince.Load(); since != 0 {
		msg := ""
		if p := s.lastErr.Load(); p != nil {
			msg = *p
		}
		return fmt.Errorf("storage cannot write to %s since %s (%s); scraped samples are dropped until space is freed or --storage.max-size is lowered",
			s.opts.Dir, time.UnixMilli(since).UTC().Format(time.RFC3339), msg)
	}
	return nil
}

// endpointNames are the names of the endpoints.
func (s *Storage) endpointNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, len(s.endpoints))
	for i, e := range s.endpoints {
		names[i] = e.name
	}
	return names
}

// Series is the number of series of the latest commit of every scrape
// target that committed in the last 10 minutes (activeWindow).
func (s *Storage) Series() int { return s.active.count(time.Now()) }

// Status describes every endpoint's backlog.
func (s *Storage) Status() []EndpointStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]EndpointStatus, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		out = append(out, e.status())
	}
	return out
}

// Close stops appends, sends what is queued for at most flushDeadline,
// saves every endpoint's position and releases the directory. What was not
// sent stays on disk for the next start.
func (s *Storage) Close(flushDeadline time.Duration) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	eps := s.endpoints
	s.mu.Unlock()

	for _, e := range eps {
		close(e.drain)
	}
	// The queue is on disk: an endpoint that is failing is not waited for
	// (the next start sends its backlog); a healthy one gets the deadline.
	timer := time.NewTimer(flushDeadline)
	defer timer.Stop()
	for _, e := range eps {
		if e.lastErr.Load() != nil {
			continue
		}
		select {
		case <-e.done:
		case <-timer.C:
		}
	}
	var errs []error
	for _, e := range eps {
		select {
		case <-e.done:
		default:
			bytes, _ := e.q.stats(e.acked.Load())
			s.logger.Warn("Stopping with samples not yet sent: they stay in the queue on disk and are sent after the next start with this --storage.path", "endpoint", e.name, "unsent_bytes", bytes, "dir", e.q.dir, "last_error", e.status().LastError)
		}
		e.stop(s.logger)
	}
	s.cancel()
	s.wg.Wait()
	if err := s.lock.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// appender collects one commit, encoded per endpoint.
type appender struct {
	s      *Storage
	eps    []*endpoint
	epoch  uint64
	bufs   [][]byte
	count  []uint32
	mint   []int64
	ex     []bool    // the endpoint sends exemplars
	hist   []bool    // the endpoint sends native histograms
	from   string    // the previous owner of the scraped target (HandedOver)
	fromAt time.Time // when it stopped writing the target
	opened int64     // unix ms
	source any       // the scrape target, for Series; nil when unknown
	n      int       // samples appended
	le     labelEncoder
}

func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.eps == nil {
		a.s.mu.RLock()
		a.eps, a.epoch = a.s.endpoints, a.s.epoch
		a.s.mu.RUnlock()
		a.bufs = make([][]byte, len(a.eps))
		a.count = make([]uint32, len(a.eps))
		a.mint = make([]int64, len(a.eps))
		a.ex = make([]bool, len(a.eps))
		a.hist = make([]bool, len(a.eps))
		for i, e := range a.eps {
			a.ex[i], a.hist[i] = e.sends()
		}
	}
	a.le.prepare(a.eps)
	var lbls [][]byte
	if a.le.relab {
		ser := a.s.cache.get(uint64(ref), ls)
		lbls, ref = a.le.encode(ser.ls, ser.relabeled(a.epoch, &a.le)), storage.SeriesRef(ser.ref)
	} else {
		lbls, ref = a.le.encode(ls, nil), plainRef(ref, ls)
	}
	a.n++
	for i := range a.eps {
		if lbls[i] == nil {
			continue // dropped by write_relabel_configs
		}
		var ex []exemplar.Exemplar
		if a.ex[i] {
			ex = opts.Exemplars
		}
		if (h != nil || fh != nil) && !a.hist[i] {
			continue
		}
		if a.bufs[i] == nil {
			a.bufs[i] = (*bufPool.Get().(*[]byte))[:0]
		}
		a.bufs[i] = appendSeries(a.bufs[i], lbls[i], t, v, h, fh, ex)
		if a.count[i] == 0 || t < a.mint[i] {
			a.mint[i] = t
		}
		a.count[i]++
	}
	return ref, nil
}

// plainRef is the reference of a series when no endpoint relabels: the
// scrape cache's own (any reference this storage gave it) or, for a new
// series, its labels' hash. The storage keeps nothing per series then
// (about 90 bytes of heap saved per series, twice that in RSS at GOGC 100);
// the reference only has to be non-zero and distinct among a target's
// series, because Prometheus' scrape cache tracks staleness by it.
func plainRef(ref storage.SeriesRef, ls labels.Labels) storage.SeriesRef {
	if ref != 0 {
		return ref
	}
	if h := ls.Hash(); h != 0 {
		return storage.SeriesRef(h)
	}
	return 1
}

func (a *appender) Commit() error {
	defer a.release()
	a.s.active.commit(a.source, a.n, time.Now())
	var errs []error
	for i, e := range a.eps {
		if a.count[i] == 0 {
			continue
		}
		if a.from != "" && e.preds != nil && e.holdWait > 0 {
			h := make([]byte, headerSize+len(a.from))
			copy(h[headerSize:], a.from)
			a.s.watch.add(a.from, a.fromAt)
			if err := e.q.appendFlags(h, 0, flagHandoff, a.fromAt.UnixMilli()); err != nil {
				a.s.logger.Warn("Cannot queue a handoff record; this target's first samples here are not held for its previous owner", "endpoint", e.name, "previous_owner", a.from, "err", err)
			}
		}
		rec := recordPool.Get().(*[]byte)
		n := headerSize + snappy.MaxEncodedLen(len(a.bufs[i]))
		if cap(*rec) < n {
			*rec = make([]byte, n)
		}
		enc := snappy.Encode((*rec)[headerSize:n], a.bufs[i])
		err := e.q.append((*rec)[:headerSize+len(enc)], a.count[i], a.mint[i])
		recordPool.Put(rec)
		if err != nil {
			a.s.m.dropped.WithLabelValues(e.name, reasonOf(err)).Add(float64(a.count[i]))
			errs = append(errs, fmt.Errorf("queue for %s: %w", e.name, err))
			continue
		}
		if a.mint[i] < a.opened-markSlack.Milliseconds() {
			e.marks.lower(a.mint[i])
		}
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		msg := err.Error()
		a.s.lastErr.Store(&msg)
		if a.s.fullSince.CompareAndSwap(0, time.Now().UnixMilli()) {
			a.s.logger.Error("Cannot write scraped samples to the delivery queue; they are dropped until space is freed", "dir", a.s.opts.Dir, "err", err)
		}
		return err
	}
	if since := a.s.fullSince.Swap(0); since != 0 {
		a.s.logger.Info("The delivery queue is writable again", "dir", a.s.opts.Dir, "unwritable_for", time.Since(time.UnixMilli(since)).Round(time.Second))
	}
	return nil
}

func (a *appender) Rollback() error {
	a.release()
	return nil
}

var (
	recordPool = sync.Pool{New: func() any { return new([]byte) }}
	bufPool    = sync.Pool{New: func() any { return new([]byte) }}
)

// release returns the commit's buffers to the pool; the commit is no longer
// open.
func (a *appender) release() {
	a.s.open.remove(a)
	for i, b := range a.bufs {
		if b != nil {
			b = b[:0]
			bufPool.Put(&b)
			a.bufs[i] = nil
		}
	}
}

func reasonOf(err error) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return "disk_full"
	}
	return "write_error"
}

// sends reports whether the endpoint sends exemplars and native histograms.
func (e *endpoint) sends() (exemplars, histograms bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.SendExemplars, e.cfg.SendNativeHistograms
}

// relabelFor returns the endpoint's external labels and write relabeling.
func (e *endpoint) relabelFor() (labels.Labels, []*relabel.Config) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ext, e.cfg.WriteRelabelConfigs
}

// shownURL is an endpoint's URL as it appears in metric labels, the status
// and logs: with its password and its query values masked (receivers that
// take a token take it as ?api_key=...), since /metrics and the API have no
// authentication of their own. Requests use rw.URL itself.
func shownURL(rw *config.RemoteWriteConfig) string {
	if rw.URL == nil || rw.URL.URL == nil {
		return ""
	}
	return redact.Queries(rw.URL.Redacted())
}

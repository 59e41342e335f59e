package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
)

// endpoint is one remote_write target: its queue, its savepoint and the
// sender that ships the queue in order, one request at a time, so a strict
// receiver sees every series in order.
type endpoint struct {
	name, url string
	logger    *slog.Logger
	q         *queue
	sp        *savepoint
	m         *metrics

	mu     sync.Mutex
	cfg    *config.RemoteWriteConfig
	client writeClient
	ext    labels.Labels

	acked    atomic.Uint64 // mirror of the savepoint for stats
	oldest   atomic.Int64  // min timestamp of the first unsent record, ms; 0: none
	lastErr  atomic.Pointer[string]
	drain    chan struct{}
	done     chan struct{}
	cancel   context.CancelFunc
	start    position
	resendOK atomic.Uint64 // samples of a resent request the receiver refused as already written
	progress progress      // read by Storage.Progress

	preds    Predecessors
	holdWait time.Duration
	marks    marks
	holding  atomic.Pointer[string] // the previous owner waited for, nil when not holding
	settled  map[string]settled     // by previous owner, see await
	watch    *watcher
}

func (e *endpoint) config() (*config.RemoteWriteConfig, writeClient) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg, e.client
}

// batch is a request being collected. Its body is the records' snappy
// blocks joined: a snappy block is a varint of the decoded length and a
// stream of literals and copies whose offsets reach back only within what
// the same stream decoded, so the streams of several blocks, one after
// another behind the varint of their summed lengths, are one valid block
// (snappy.Encode itself joins 64 KiB fragments so). The sender neither
// decodes the records nor encodes the request again: the decoding alone
// was 5 % of an agent's CPU profile at 100k series.
type batch struct {
	// blocks holds reqHeadroom bytes for the request's length varint,
	// then the records' streams.
	blocks  []byte
	rawLen  uint64 // the decoded length of the request
	req     []byte // a remote-write 2.0 request, compressed, reused
	samples int
	end     uint64
	mint    int64
	maxt    int64 // the newest record's timestamp
	// handoff is set, with no samples, when the reader stopped at a
	// handoff record.
	handoff *handoff
}

var errDrained = errors.New("queue drained")

// reqHeadroom is room for the length varint of a snappy block, whose
// decoded length is at most 2^32-1.
const reqHeadroom = 5

// request is the snappy-compressed remote-write request of the batch.
func (b *batch) request() []byte {
	var hdr [reqHeadroom]byte
	n := binary.PutUvarint(hdr[:], b.rawLen)
	start := reqHeadroom - n
	copy(b.blocks[start:reqHeadroom], hdr[:n])
	return b.blocks[start:]
}

// addRecord appends a record's snappy block to the batch; false, with the
// batch unchanged, when its header is not a snappy block's or the request
// would exceed what a block can hold.
func (b *batch) addRecord(payload []byte) (ok bool, full bool) {
	n, k := binary.Uvarint(payload)
	if k <= 0 || n > math.MaxUint32 {
		return false, false
	}
	if b.rawLen+n > math.MaxUint32 {
		return false, true
	}
	b.blocks = append(b.blocks, payload[k:]...)
	b.rawLen += n
	return true, false
}

// collect reads records from r into a batch: up to max samples, sent when
// full or deadline after its first record; with upto > r.off exactly the
// records before upto (the request in flight when the agent stopped).
func (e *endpoint) collect(ctx context.Context, r *reader, b *batch, upto uint64, maxSamples int, deadline time.Duration) error {
	if len(b.blocks) < reqHeadroom {
		b.blocks = make([]byte, reqHeadroom, 64<<10)
	}
	b.blocks, b.rawLen = b.blocks[:reqHeadroom], 0
	b.samples, b.end, b.mint, b.maxt, b.handoff = 0, r.off, 0, 0, nil
	var timer <-chan time.Time
	for {
		if upto > 0 && r.off >= upto {
			return nil
		}
		if upto == 0 && b.samples >= maxSamples {
			return nil
		}
		payload, samples, mint, next, wait, err := r.next()
		if err != nil {
			return err
		}
		if wait == nil && r.flags&flagHandoff != 0 {
			if b.samples == 0 {
				b.handoff = &handoff{from: string(payload), t: mint, next: next}
				e.oldest.Store(mint) // what waits behind it is at least this old
			}
			return nil // what is before the record goes out first
		}
		if wait == nil {
			ok, full := b.addRecord(payload)
			if full && b.samples > 0 {
				return nil // the record heads the next request
			}
			if !ok {
				// A record that passed its checksum but is no snappy block: skip it.
				e.logger.Error("Skipping an undecodable record in the delivery queue", "endpoint", e.name, "err", snappy.ErrCorrupt)
				r.off = next
				continue
			}
			if b.samples == 0 {
				b.mint = mint
				// The oldest unsent record heads this batch: the lag is
				// right while the batch fills, not only once it is sent.
				e.oldest.Store(mint)
				timer = time.After(deadline)
			}
			b.samples += int(samples)
			b.maxt = max(b.maxt, mint)
			r.off, b.end = next, next
			continue
		}
		if upto > 0 {
			// The queue ends before the savepoint's request did (a torn
			// tail): send what there is.
			b.end = r.off
			return nil
		}
		select {
		case <-e.drain:
			if b.samples == 0 {
				return errDrained
			}
			return nil
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		case <-timer:
			return nil
		case <-e.drain:
		}
	}
}

// run ships the queue until ctx ends or, once drain is closed, the queue
// is empty.
func (e *endpoint) run(ctx context.Context) {
	defer close(e.done)
	r := &reader{q: e.q, off: e.start.acked}
	defer r.close()
	pos := e.start
	if pos.inflight < pos.acked {
		pos.inflight = pos.acked
	}
	resend := pos.inflight > pos.acked
	var b batch
	for {
		cfg, _ := e.config()
		upto := uint64(0)
		if resend {
			upto = pos.inflight
		}
		err := e.collect(ctx, r, &b, upto, cfg.QueueConfig.MaxSamplesPerSend, time.Duration(cfg.QueueConfig.BatchSendDeadline))
		if err != nil {
			if !errors.Is(err, errDrained) && ctx.Err() == nil {
				e.logger.Error("Reading the delivery queue failed", "endpoint", e.name, "err", err)
			}
			return
		}
		if b.handoff != nil {
			if !e.await(ctx, *b.handoff) {
				return
			}
			r.off = b.handoff.next
			continue
		}
		if b.end == pos.acked {
			resend = false
			continue
		}
		pos.inflight = b.end
		e.q.setInflight(b.end)
		if err := e.sp.save(pos); err != nil {
			e.logger.Error("Saving the delivery position failed; a restart may resend more", "endpoint", e.name, "err", err)
		}
		if !e.send(ctx, &b, resend) {
			return // stopped before the request was acknowledged
		}
		resend = false
		pos.acked = b.end
		if err := e.sp.save(pos); err != nil {
			e.logger.Error("Saving the delivery position failed; a restart may resend more", "endpoint", e.name, "err", err)
		}
		e.acked.Store(pos.acked)
		e.q.release(pos.acked)
	}
}

// send delivers b, retrying recoverable errors with back-off until ctx
// ends (then it returns false). A request the receiver refuses is dropped
// and counted: retrying it would block every later sample.
func (e *endpoint) send(ctx context.Context, b *batch, resend bool) bool {
	cfg, client := e.config()
	req := b.request()
	if cfg.ProtobufMessage == remoteapi.WriteV2MessageType {
		raw, err := snappy.Decode(nil, req)
		var v2 []byte
		if err == nil {
			v2, err = toV2(raw)
		}
		if err != nil {
			e.m.failed.WithLabelValues(e.name, e.url).Add(float64(b.samples))
			e.logger.Error("Cannot encode a remote-write 2.0 request; its samples are dropped", "endpoint", e.name, "err", err)
			return true
		}
		b.req = snappy.Encode(b.req[:cap(b.req)], v2)
		req = b.req
	}
	backoff := time.Duration(cfg.QueueConfig.MinBackoff)
	for attempt := 0; ; attempt++ {
		err := client.store(ctx, req, attempt)
		if err == nil {
			e.m.sent.WithLabelValues(e.name, e.url).Add(float64(b.samples))
			e.m.bytes.WithLabelValues(e.name, e.url).Add(float64(len(req)))
			e.m.highest.WithLabelValues(e.name, e.url).Set(float64(time.Now().Unix()))
			e.lastErr.Store(nil)
			e.progress.acknowledged(b.samples, b.maxt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		msg := err.Error()
		e.lastErr.Store(&msg)
		e.progress.failed(msg, time.Now())
		if !recoverable(err) {
			if resend {
				// The request in flight at the last stop may have been
				// written already; a strict receiver then refuses its
				// older samples as out of order.
				e.resendOK.Add(uint64(b.samples))
				e.logger.Info("The receiver refused the request resent after a restart; it was most likely written before the stop", "endpoint", e.name, "samples", b.samples, "err", err)
				return true
			}
			e.m.failed.WithLabelValues(e.name, e.url).Add(float64(b.samples))
			e.logger.Error("The receiver refused a request; its samples are dropped", "endpoint", e.name, "samples", b.samples, "err", err)
			return true
		}
		e.m.retried.WithLabelValues(e.name, e.url).Add(float64(b.samples))
		if attempt == 0 || attempt%20 == 0 {
			e.logger.Warn("Remote write failed, retrying; samples stay queued on disk", "endpoint", e.name, "attempt", attempt+1, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Duration(cfg.QueueConfig.MaxBackoff))
	}
}

func (e *endpoint) status() EndpointStatus {
	bytes, samples := e.q.stats(e.acked.Load())
	st := EndpointStatus{Name: e.name, URL: e.url, BacklogBytes: bytes, BacklogSamples: samples, Acknowledged: e.acked.Load()}
	if m := e.oldest.Load(); m > 0 && bytes > 0 {
		st.OldestUnsent = time.UnixMilli(m)
	}
	if p := e.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	if p := e.holding.Load(); p != nil {
		st.WaitingFor = *p
	}
	return st
}

// EndpointStatus is what the status page and the API show of an endpoint.
type EndpointStatus struct {
	Name           string `json:"name"`
	URL            string `json:"url"`
	BacklogBytes   uint64 `json:"backlogBytes"`
	BacklogSamples uint64 `json:"backlogSamples"`
	// Acknowledged is the queue position the receiver has acknowledged:
	// it grows, across restarts too, while the endpoint delivers.
	Acknowledged uint64    `json:"acknowledged"`
	OldestUnsent time.Time `json:"oldestUnsent,omitzero"`
	LastError    string    `json:"lastError,omitempty"`
	// WaitingFor names the previous owner of a taken-over target whose
	// older samples must be delivered before this endpoint sends on.
	WaitingFor string `json:"waitingFor,omitempty"`
}

package agent

import (
	"context"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/delivery"
)

const (
	// historyStep is the status page chart's resolution: a sample of the
	// counters every 15 s, the default scrape interval.
	historyStep = 15 * time.Second
	// historyIntervals is how many steps the chart spans: 15 minutes,
	// enough to see an outage start and a catch-up end.
	historyIntervals = 60
	// rateWindow is what the delivery table's send rate is averaged over,
	// as rate(...[1m]) would.
	rateWindow = time.Minute
)

// sample is the page's counters at one instant.
type sample struct {
	t time.Time
	// sent is the samples each remote_write endpoint acknowledged since it
	// was opened, by endpoint name.
	sent map[string]uint64
	// moves is how many ownership moves the move log ever recorded.
	moves uint64
}

// history keeps the last samples, one per step, in a ring buffer: the
// chart's intervals and the send rate's baseline. It is safe for
// concurrent use.
type history struct {
	step time.Duration
	mu   sync.Mutex
	buf  []sample // oldest first until full, then a ring starting at next
	next int
}

// newHistory keeps intervals+1 samples: the ends of intervals intervals.
func newHistory(step time.Duration, intervals int) *history {
	return &history{step: step, buf: make([]sample, 0, intervals+1)}
}

// add appends s, dropping the oldest sample when full.
func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) < cap(h.buf) {
		h.buf = append(h.buf, s)
		return
	}
	h.buf[h.next] = s
	h.next = (h.next + 1) % len(h.buf)
}

// samples returns the samples, oldest first.
func (h *history) samples() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sample, 0, len(h.buf))
	out = append(out, h.buf[h.next:]...)
	return append(out, h.buf[:h.next]...)
}

// span is how long a full history covers.
func (h *history) span() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.step * time.Duration(cap(h.buf)-1)
}

// run takes a sample at every tick until ctx is done; take reads the
// counters and the clock. The first sample is taken at once: it is the
// baseline of the first interval.
func (h *history) run(ctx context.Context, ticks <-chan time.Time, take func() sample) error {
	h.add(take())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			h.add(take())
		}
	}
}

// takeSample reads the counters the page charts, at the node's clock (the
// one the page and the scrapes' timestamps use).
func (a *Agent) takeSample() sample {
	return newSample(a.node.Now(), a.store.d.Progress(), a.moves.count())
}

// newSample is the counters at t.
func newSample(t time.Time, progress []delivery.Progress, moves uint64) sample {
	s := sample{t: t, sent: make(map[string]uint64, len(progress)), moves: moves}
	for _, p := range progress {
		s.sent[p.Name] = p.SentSamples
	}
	return s
}

// runHistory is the history sampler's actor: a sample every step.
func (a *Agent) runHistory(ctx context.Context) error {
	t := time.NewTicker(a.hist.step)
	defer t.Stop()
	return a.hist.run(ctx, t.C, a.takeSample)
}

// sentSince is what endpoint acknowledged between two samples. An endpoint
// opened in between (a reload) or re-opened (its counter restarted) counts
// from 0, as rate() treats a counter reset.
func sentSince(before, after sample, endpoint string) uint64 {
	n, b := after.sent[endpoint], before.sent[endpoint]
	if n < b {
		return n
	}
	return n - b
}

// interval is what happened between two consecutive samples.
type interval struct {
	start, end time.Time
	// sentRate is the samples acknowledged per second, summed over the
	// endpoints.
	sentRate float64
	moves    uint64
}

// intervals are the intervals between consecutive samples, oldest first.
func intervals(ss []sample) []interval {
	var out []interval
	for i := 1; i < len(ss); i++ {
		prev, cur := ss[i-1], ss[i]
		dt := cur.t.Sub(prev.t).Seconds()
		if dt <= 0 {
			continue // a clock step back: no rate over it
		}
		var sent uint64
		for name := range cur.sent {
			sent += sentSince(prev, cur, name)
		}
		moves := uint64(0)
		if cur.moves > prev.moves {
			moves = cur.moves - prev.moves
		}
		out = append(out, interval{start: prev.t, end: cur.t, sentRate: float64(sent) / dt, moves: moves})
	}
	return out
}

// sendRate is endpoint's send rate from the newest sample at least window
// before cur (or the oldest one, while the history is shorter) to cur, and
// the time it is averaged over; ok is false without an earlier sample.
func sendRate(ss []sample, cur sample, endpoint string, window time.Duration) (rate float64, over time.Duration, ok bool) {
	var base *sample
	for i := range ss {
		if !ss[i].t.Before(cur.t) {
			break
		}
		if base == nil || !ss[i].t.After(cur.t.Add(-window)) {
			base = &ss[i]
		}
	}
	if base == nil {
		return 0, 0, false
	}
	over = cur.t.Sub(base.t)
	return float64(sentSince(*base, cur, endpoint)) / over.Seconds(), over, true
}

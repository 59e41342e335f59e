package fleet

import (
	"sync"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Counter selects the summed samples of a counter (testenv.SumCounters).
type Counter = testenv.Counter

// Counters the harness follows. The receiver's remote-write handler (v1)
// rolls a whole request back on the first out-of-order sample and answers
// 400, which the sender does not retry: one interleaved sample costs the
// whole batch, other targets' samples included.
var (
	// rcvOutOfOrder counts out-of-order samples the receiver's TSDB refused.
	rcvOutOfOrder = Counter{Name: "prometheus_tsdb_out_of_order_samples_total"}
	// rcvRejected counts remote-write requests the receiver answered 400.
	rcvRejected = Counter{Name: "prometheus_http_requests_total", Labels: `handler="/api/v1/write" code="400"`}
	// shoalFailed counts samples shoal's remote write gave up on
	// (non-recoverable errors such as a 400).
	shoalFailed = Counter{Name: "prometheus_remote_storage_samples_failed_total"}
	// shoalDropped counts unsent samples shoal's delivery queue deleted to
	// stay under --storage.max-size.
	shoalDropped = Counter{Name: "shoal_delivery_samples_dropped_total"}
)

// counterTotals follows counters of processes that restart: a value below
// the last one seen means the process started again from zero, so the last
// value is banked. Increments between the last poll and a crash are lost,
// which makes the totals lower bounds. It is safe for concurrent use.
type counterTotals struct {
	mu   sync.Mutex
	last map[string]map[Counter]float64 // by source
	bank map[Counter]float64
}

func newCounterTotals() *counterTotals {
	return &counterTotals{last: map[string]map[Counter]float64{}, bank: map[Counter]float64{}}
}

// observe records one reading of source's counters.
func (t *counterTotals) observe(source string, vals map[Counter]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last := t.last[source]
	if last == nil {
		last = map[Counter]float64{}
		t.last[source] = last
	}
	for c, v := range vals {
		if v < last[c] {
			t.bank[c] += last[c]
		}
		last[c] = v
	}
}

// total returns the sum of c over every source and restart.
func (t *counterTotals) total(c Counter) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	sum := t.bank[c]
	for _, last := range t.last {
		sum += last[c]
	}
	return sum
}

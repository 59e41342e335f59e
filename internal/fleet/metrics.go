package fleet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metricsTimeout bounds one GET /metrics.
const metricsTimeout = 5 * time.Second

// Counter selects the samples of a counter in a text exposition whose
// labels contain every one of Labels (space-separated `name="value"`
// pairs); they are summed.
type Counter struct {
	Name   string
	Labels string
}

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
	// shoalDropped counts samples shoal's remote write dropped before
	// sending them.
	shoalDropped = Counter{Name: "prometheus_remote_storage_samples_dropped_total"}
)

// sumCounters reads a text exposition and sums each counter's samples.
func sumCounters(r io.Reader, cs []Counter) (map[Counter]float64, error) {
	out := make(map[Counter]float64, len(cs))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		for _, c := range cs {
			if !strings.HasPrefix(line, c.Name) {
				continue
			}
			rest := line[len(c.Name):]
			if rest == "" || rest[0] != '{' && rest[0] != ' ' {
				continue // a longer name with this prefix
			}
			ok := true
			for _, l := range strings.Fields(c.Labels) {
				ok = ok && strings.Contains(rest, l)
			}
			if !ok {
				continue
			}
			fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
			if len(fields) == 0 {
				return nil, fmt.Errorf("no value in %q", line)
			}
			v, err := strconv.ParseFloat(fields[0], 64)
			if err != nil {
				return nil, fmt.Errorf("value of %q: %w", line, err)
			}
			out[c] += v
		}
	}
	return out, sc.Err()
}

// fetchCounters GETs url (a /metrics endpoint) and sums the counters.
func fetchCounters(ctx context.Context, hc *http.Client, url string, cs []Counter) (map[Counter]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return sumCounters(resp.Body, cs)
}

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

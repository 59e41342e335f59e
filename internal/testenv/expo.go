package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metricsTimeout bounds one GET /metrics.
const metricsTimeout = 10 * time.Second

// Counter selects the samples of a metric in a text exposition whose
// labels contain every one of Labels (space-separated `name="value"`
// pairs; empty selects every series of the name); they are summed.
type Counter struct {
	Name   string
	Labels string
}

// SumCounters reads a Prometheus text exposition and sums each counter's
// samples. A counter with no sample is absent from the map.
func SumCounters(r io.Reader, cs []Counter) (map[Counter]float64, error) {
	out := make(map[Counter]float64, len(cs))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
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
			if rest[0] == '{' {
				// Label values may hold '}' only escaped inside quotes, which
				// the metrics read here do not have; the last '}' ends them.
				i := strings.LastIndexByte(rest, '}')
				if i < 0 {
					return nil, fmt.Errorf("unterminated labels in %q", line)
				}
				rest = rest[i+1:]
			}
			fields := strings.Fields(rest)
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

// FetchCounters GETs url (a /metrics endpoint) and sums the counters; see
// SumCounters.
func FetchCounters(ctx context.Context, hc *http.Client, url string, cs []Counter) (map[Counter]float64, error) {
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
	m, err := SumCounters(resp.Body, cs)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return m, nil
}

// PromDuration formats d for Prometheus' and vmagent's duration parsers,
// which take no fractions and no "1m0s": 2.5 s is written "2500ms", a
// minute "60s".
func PromDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

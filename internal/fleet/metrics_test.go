package fleet

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSumCounters(t *testing.T) {
	const text = `# HELP prometheus_http_requests_total Counter of HTTP requests.
# TYPE prometheus_http_requests_total counter
prometheus_http_requests_total{code="204",handler="/api/v1/write"} 40
prometheus_http_requests_total{code="400",handler="/api/v1/write"} 3
prometheus_http_requests_total{code="400",handler="/api/v1/query"} 7
prometheus_tsdb_out_of_order_samples_total{type="float"} 5
prometheus_tsdb_out_of_order_samples_total{type="histogram"} 1
prometheus_tsdb_out_of_order_samples_total_extra 100
prometheus_remote_storage_samples_failed_total{remote_name="a",url="http://x"} 2.5e+01
`
	got, err := sumCounters(strings.NewReader(text), []Counter{rcvRejected, rcvOutOfOrder, shoalFailed, shoalDropped})
	require.NoError(t, err)
	require.Equal(t, map[Counter]float64{rcvRejected: 3, rcvOutOfOrder: 6, shoalFailed: 25}, got)

	_, err = sumCounters(strings.NewReader("prometheus_tsdb_out_of_order_samples_total{} x\n"), []Counter{rcvOutOfOrder})
	require.Error(t, err)
}

func TestCounterTotals(t *testing.T) {
	tests := []struct {
		name     string
		readings []map[Counter]float64 // of one source, in order
		want     float64
	}{
		{"rising", []map[Counter]float64{{shoalFailed: 1}, {shoalFailed: 4}}, 4},
		{"restart banks the last value", []map[Counter]float64{{shoalFailed: 5}, {shoalFailed: 2}, {shoalFailed: 3}}, 8},
		{"absent counter", []map[Counter]float64{{}, {}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := newCounterTotals()
			for _, r := range tt.readings {
				ct.observe("a", r)
			}
			ct.observe("b", map[Counter]float64{shoalFailed: 10})
			require.Equal(t, tt.want+10, ct.total(shoalFailed))
		})
	}
}

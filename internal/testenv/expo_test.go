package testenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const exposition = `# HELP prometheus_http_requests_total Counter of HTTP requests.
# TYPE prometheus_http_requests_total counter
prometheus_http_requests_total{code="204",handler="/api/v1/write"} 40
prometheus_http_requests_total{code="400",handler="/api/v1/write"} 3
prometheus_http_requests_total{code="400",handler="/api/v1/query"} 7
prometheus_tsdb_out_of_order_samples_total{type="float"} 5
prometheus_tsdb_out_of_order_samples_total{type="histogram"} 1
prometheus_tsdb_out_of_order_samples_total_extra 100
prometheus_remote_storage_bytes_total{remote_name="a",url="http://x/api/v1/write"} 1000
prometheus_remote_storage_bytes_total{remote_name="b",url="http://y/{odd}"} 24.5
prometheus_remote_storage_metadata_bytes_total{remote_name="a"} 10
vmagent_remotewrite_bytes_sent_total{url="1:secret-url"} 5e+06
go_memstats_heap_inuse_bytes 1.2345e+07
`

func TestSumCounters(t *testing.T) {
	var (
		rejected   = Counter{Name: "prometheus_http_requests_total", Labels: `handler="/api/v1/write" code="400"`}
		outOfOrder = Counter{Name: "prometheus_tsdb_out_of_order_samples_total"}
		bytes      = Counter{Name: "prometheus_remote_storage_bytes_total"}
		vmBytes    = Counter{Name: "vmagent_remotewrite_bytes_sent_total"}
		heap       = Counter{Name: "go_memstats_heap_inuse_bytes"}
		absent     = Counter{Name: "absent"}
	)
	got, err := SumCounters(strings.NewReader(exposition), []Counter{rejected, outOfOrder, bytes, vmBytes, heap, absent})
	require.NoError(t, err)
	require.Equal(t, map[Counter]float64{rejected: 3, outOfOrder: 6, bytes: 1024.5, vmBytes: 5e6, heap: 12345000}, got)

	m := []Counter{{Name: "m"}}
	_, err = SumCounters(strings.NewReader("m{a=\"b\"}\n"), m)
	require.ErrorContains(t, err, "no value")
	_, err = SumCounters(strings.NewReader("m x\n"), m)
	require.ErrorContains(t, err, "value of")
	_, err = SumCounters(strings.NewReader("m{a=\"b\" 1\n"), m)
	require.ErrorContains(t, err, "unterminated labels")
}

func TestFetchCounters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	hc := srv.Client()
	heap := Counter{Name: "go_memstats_heap_inuse_bytes"}
	got, err := FetchCounters(t.Context(), hc, srv.URL+"/metrics", []Counter{heap})
	require.NoError(t, err)
	require.Equal(t, 12345000.0, got[heap])
	_, err = FetchCounters(t.Context(), hc, srv.URL+"/nothing", []Counter{{Name: "x"}})
	require.ErrorContains(t, err, "404")
}

func TestPromDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{2 * time.Second, "2s"},
		{time.Minute, "60s"},
		{2500 * time.Millisecond, "2500ms"},
		{500 * time.Millisecond, "500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, PromDuration(tt.d))
		})
	}
}

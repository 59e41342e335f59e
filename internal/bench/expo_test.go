package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const exposition = `# HELP prometheus_remote_storage_bytes_total The total number of bytes sent.
# TYPE prometheus_remote_storage_bytes_total counter
prometheus_remote_storage_bytes_total{remote_name="a",url="http://x/api/v1/write"} 1000
prometheus_remote_storage_bytes_total{remote_name="b",url="http://y/{odd}"} 24.5
prometheus_remote_storage_bytes_total_extra 99
prometheus_remote_storage_metadata_bytes_total{remote_name="a"} 10
vmagent_remotewrite_bytes_sent_total{url="1:secret-url"} 5e+06
go_memstats_heap_inuse_bytes 1.2345e+07
`

func TestSumMetrics(t *testing.T) {
	got, err := SumMetrics(strings.NewReader(exposition),
		"prometheus_remote_storage_bytes_total", "vmagent_remotewrite_bytes_sent_total",
		"go_memstats_heap_inuse_bytes", "absent")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		"prometheus_remote_storage_bytes_total": 1024.5,
		"vmagent_remotewrite_bytes_sent_total":  5e6,
		"go_memstats_heap_inuse_bytes":          12345000,
	}, got)

	_, err = SumMetrics(strings.NewReader("m{a=\"b\"}\n"), "m")
	require.ErrorContains(t, err, "no value")
	_, err = SumMetrics(strings.NewReader("m x\n"), "m")
	require.ErrorContains(t, err, "value of")
}

func TestFetchMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	hc := srv.Client()
	got, err := FetchMetrics(t.Context(), hc, srv.URL+"/metrics", "go_memstats_heap_inuse_bytes")
	require.NoError(t, err)
	require.Equal(t, 12345000.0, got["go_memstats_heap_inuse_bytes"])
	_, err = FetchMetrics(t.Context(), hc, srv.URL+"/nothing", "x")
	require.ErrorContains(t, err, "404")
}

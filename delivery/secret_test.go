package delivery

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
)

// TestMetricsMaskURLPassword: an endpoint URL with a password in it is sent
// with those credentials, and its `url` label on /metrics, like its status,
// shows the password masked (/metrics has no authentication of its own).
func TestMetricsMaskURLPassword(t *testing.T) {
	const secret = "rw-s3cret"
	rcv := newStrictReceiver()
	var authed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "shoal" && p == secret {
			authed.Add(1)
		}
		rcv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	withAuth := strings.Replace(srv.URL, "http://", "http://shoal:"+secret+"@", 1)
	s, reg := open(t, t.TempDir(), testConfig(t, withAuth), Options{})
	defer func() { require.NoError(t, s.Close(time.Second)) }()
	require.NoError(t, scrape(t, s, 3, 1000))
	require.Eventually(t, func() bool { return rcv.count() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.Positive(t, authed.Load(), "the URL's credentials were used")

	masked := strings.Replace(srv.URL, "http://", "http://shoal:xxxxx@", 1) + "/api/v1/write"
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s.m.sent.WithLabelValues("rcv", masked)) == 3
	}, 5*time.Second, 5*time.Millisecond, "samples are counted under the masked URL")
	requireShownMasked(t, reg, s, secret, masked)
}

// TestMetricsMaskURLQuery: an endpoint URL with a token in its query is sent
// with it, and its `url` label and status show the value masked.
func TestMetricsMaskURLQuery(t *testing.T) {
	const secret = "tok-s3cret"
	rcv := newStrictReceiver()
	var authed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api_key") == secret {
			authed.Add(1)
		}
		rcv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg, err := config.Load(`
remote_write:
  - url: `+srv.URL+`/api/v1/write?api_key=`+secret+`
    name: rcv
    queue_config: {batch_send_deadline: 20ms, min_backoff: 5ms, max_backoff: 20ms}
    write_relabel_configs:
      - {source_labels: [__name__], regex: dropped, action: drop}
`, nil)
	require.NoError(t, err)
	s, reg := open(t, t.TempDir(), cfg, Options{})
	defer func() { require.NoError(t, s.Close(time.Second)) }()
	require.NoError(t, scrape(t, s, 3, 1000))
	require.Eventually(t, func() bool { return rcv.count() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.Positive(t, authed.Load(), "the URL's token was sent")

	masked := srv.URL + "/api/v1/write?api_key=xxxxx"
	requireShownMasked(t, reg, s, secret, masked)
}

// requireShownMasked checks that no metric label holds secret, that every
// url label is masked, and that the endpoints' status shows masked too.
func requireShownMasked(t *testing.T, reg prometheus.Gatherer, s *Storage, secret, masked string) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var labelled int
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				require.NotContains(t, l.GetValue(), secret, "%s{%s}", mf.GetName(), l.GetName())
				if l.GetName() == "url" {
					require.Equal(t, masked, l.GetValue())
					labelled++
				}
			}
		}
	}
	require.Positive(t, labelled, "the test saw url labels")
	for _, st := range s.Status() {
		require.Equal(t, masked, st.URL)
	}
}

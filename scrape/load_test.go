package scrape

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

func TestLoadsSmooth(t *testing.T) {
	l := newLoads()
	t0 := time.UnixMilli(1_700_000_000_000)
	iv := 10 * time.Second
	l.observe(1, 1000, iv, t0)
	got := l.snapshot(t0)
	require.Len(t, got, 1)
	require.Equal(t, 1000.0, got[0].Series, "the first scrape sets the size")
	require.InDelta(t, 100.0, got[0].SamplesPerSecond, 1e-9)

	// ±10 % from scrape to scrape barely moves the average.
	at := t0
	for i := range 30 {
		at = at.Add(iv)
		n := 900
		if i%2 == 0 {
			n = 1100
		}
		l.observe(1, n, iv, at)
	}
	require.InDelta(t, 1000, l.snapshot(at)[0].Series, 25)

	// A step is followed: 95 % of it after three time constants.
	for range int(3 * loadTau / iv) {
		at = at.Add(iv)
		l.observe(1, 2000, iv, at)
	}
	require.InDelta(t, 2000, l.snapshot(at)[0].Series, 60)

	// Not scraped for a few intervals: no longer reported; much later
	// forgotten.
	require.Empty(t, l.snapshot(at.Add(loadRecent*iv+time.Second)))
	l.snapshot(at.Add(loadForget + time.Second))
	require.Empty(t, l.m)
}

// TestManagerMeasuresLoad: the fence counts a real scrape's samples (the
// target's series plus the engine's report series) per owned target only.
func TestManagerMeasuresLoad(t *testing.T) {
	serve := func(series int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = fmt.Fprintln(w, "# TYPE shoal_test_value gauge")
			for i := range series {
				_, _ = fmt.Fprintf(w, "shoal_test_value{i=\"%d\"} 1\n", i)
			}
		}))
		t.Cleanup(srv.Close)
		u, err := url.Parse(srv.URL)
		require.NoError(t, err)
		return u.Host
	}
	small, big, foreign := serve(10), serve(200), serve(50)
	cfg := loadConfig(t, `
scrape_configs:
  - job_name: app
    scrape_interval: 100ms
    scrape_timeout: 50ms
`)
	owner := &fakeOwner{ready: true, owns: ownURLs("app", "http://"+small+"/metrics", "http://"+big+"/metrics")}
	m := startManager(t, cfg, owner, teststorage.NewAppendable(), prometheus.NewRegistry(), small, big, foreign)
	k := newKeyer()
	want := map[uint64]float64{
		k.sum("app", "http://"+small+"/metrics"): 10,
		k.sum("app", "http://"+big+"/metrics"):   200,
	}
	require.Eventually(t, func() bool {
		ls := m.Loads()
		if len(ls) != 2 {
			return false
		}
		for _, l := range ls {
			// The report series (up, scrape_duration_seconds, ...) come on top.
			w, ok := want[l.Key]
			if !ok || l.Series < w || l.Series > w+10 || l.Scrapes < 3 {
				return false
			}
			require.InDelta(t, l.Series/0.1, l.SamplesPerSecond, 1e-6)
		}
		return true
	}, 10*time.Second, 20*time.Millisecond)
}

package scrape

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

func metricsServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = fmt.Fprintln(w, "# TYPE shoal_test_value gauge")
		_, _ = fmt.Fprintln(w, "shoal_test_value 42")
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	return u.Host
}

// samplesFor returns the shoal_test_value samples scraped from instance; stale
// counts end-of-run staleness markers among them.
func samplesFor(app *teststorage.Appendable, instance string) (n, stale int) {
	for _, s := range app.ResultSamples() {
		if s.L.Get(model.MetricNameLabel) != "shoal_test_value" || s.L.Get(model.InstanceLabel) != instance {
			continue
		}
		n++
		if value.IsStaleNaN(s.V) {
			stale++
		}
	}
	return n, stale
}

func TestManagerScrapesOwnedTargetsOnly(t *testing.T) {
	moved, removed, foreign := metricsServer(t), metricsServer(t), metricsServer(t)
	cfg := loadConfig(t, `
scrape_configs:
  - job_name: app
    scrape_interval: 100ms
    scrape_timeout: 50ms
`)
	owner := &fakeOwner{ready: true, owns: ownURLs("app", "http://"+moved+"/metrics", "http://"+removed+"/metrics")}
	discovered := make(chan map[string][]*targetgroup.Group)
	app := teststorage.NewAppendable()
	m, err := New(Options{
		Owner:                   owner,
		Discovered:              discovered,
		NodeName:                "node-1",
		ReplicaLabel:            "replica",
		MinReshardInterval:      10 * time.Millisecond,
		DiscoveryReloadInterval: 20 * time.Millisecond,
	}, nil, app, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	discovered <- map[string][]*targetgroup.Group{"app": {group("g", moved, removed, foreign)}}
	require.Eventually(t, func() bool {
		n1, _ := samplesFor(app, moved)
		n2, _ := samplesFor(app, removed)
		return n1 > 0 && n2 > 0
	}, 10*time.Second, 10*time.Millisecond)
	n, _ := samplesFor(app, foreign)
	require.Zero(t, n, "targets owned by a peer are not scraped")
	require.Len(t, m.TargetsActive()["app"], 2)
	for _, s := range app.ResultSamples() {
		require.Equal(t, "node-1", s.L.Get("replica"), "owned targets carry the replica label")
	}

	// In one pass, a peer takes `moved` and discovery drops `removed`.
	owner.set(true, ownURLs("app", "http://"+removed+"/metrics"))
	discovered <- map[string][]*targetgroup.Group{"app": {group("g", moved, foreign)}}
	require.Eventually(t, func() bool {
		_, stale := samplesFor(app, removed)
		return stale > 0
	}, 10*time.Second, 10*time.Millisecond, "a target removed by discovery gets staleness markers")
	require.Empty(t, m.TargetsActive()["app"])
	_, stale := samplesFor(app, moved)
	require.Zero(t, stale, "a target that moved to a peer gets no staleness markers")
	require.Equal(t, uint64(1), m.Filter().Stats().MovedOut)

	p, err := m.Get()
	require.NoError(t, err)
	require.NotNil(t, p)
}

func TestNewManagerValidation(t *testing.T) {
	owner := &fakeOwner{}
	ch := make(chan map[string][]*targetgroup.Group)
	app := teststorage.NewAppendable()
	tests := []struct {
		name    string
		opts    Options
		app     *teststorage.Appendable
		wantErr string
	}{
		{"no appendable", Options{Owner: owner, Discovered: ch}, nil, "scrape appendable is required"},
		{"no channel", Options{Owner: owner}, app, "discovered targets channel is required"},
		{"no owner", Options{Discovered: ch}, app, "filter owner is required"},
		{"negative reload", Options{Owner: owner, Discovered: ch, DiscoveryReloadInterval: -1}, app, "discovery reload interval must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.app == nil {
				_, err = New(tt.opts, nil, nil, prometheus.NewRegistry())
			} else {
				_, err = New(tt.opts, nil, tt.app, prometheus.NewRegistry())
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

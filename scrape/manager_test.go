package scrape

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
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
		Config:                  Config{ReplicaLabel: "replica"},
		MinReshardInterval:      10 * time.Millisecond,
		DiscoveryReloadInterval: 20 * time.Millisecond,
	}, nil, serial(app), prometheus.NewRegistry())
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

// TestPhaseSeedAlignsScrapes: two agents with the same PhaseSeed scrape a
// target at the same phase of the interval, so a target that moves between
// them keeps its rhythm. It also fails if a Prometheus upgrade renames the
// field setPhaseSeed writes.
func TestPhaseSeedAlignsScrapes(t *testing.T) {
	const interval = 200 * time.Millisecond
	var mu sync.Mutex
	seen := map[string][]time.Time{} // remote address (one connection per manager) -> scrape times
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.RemoteAddr] = append(seen[r.RemoteAddr], time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte("x 1\n"))
	}))
	t.Cleanup(srv.Close)
	target := strings.TrimPrefix(srv.URL, "http://")
	start := func(node, seed string) *Manager {
		// Each agent has its own external label, as a replica label would
		// be: it must not shift the phase.
		cfg := loadConfig(t, `
global:
  external_labels: {agent: `+node+`}
scrape_configs:
  - job_name: app
    scrape_interval: 200ms
    scrape_timeout: 100ms
`)
		discovered := make(chan map[string][]*targetgroup.Group, 1)
		m, err := New(Options{
			Owner: &fakeOwner{ready: true, owns: ownAll}, Discovered: discovered, NodeName: node,
			PhaseSeed: seed, MinReshardInterval: time.Millisecond, DiscoveryReloadInterval: 10 * time.Millisecond,
		}, nil, teststorage.NewAppendable(), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, m.ApplyConfig(cfg))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
		discovered <- map[string][]*targetgroup.Group{"app": {group("g", target)}}
		return m
	}
	a, b, c := start("node-1", "cluster-a"), start("node-2", "cluster-a"), start("node-3", "cluster-b")
	seed := func(m *Manager) uint64 { return reflect.ValueOf(m.prom).Elem().FieldByName("offsetSeed").Uint() }
	require.Equal(t, seed(a), seed(b), "same cluster seed, same phase seed, whatever the external labels")
	require.NotEqual(t, seed(a), seed(c))
	require.Equal(t, a.fence.seed.Load(), b.fence.seed.Load(), "the fences judge slots with the same seed")
	require.Equal(t, seed(a), a.fence.seed.Load(), "the fence's seed is Prometheus'")

	// a and b: their scrapes of the one target fall at the same phase.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ts := range seen {
			if len(ts) >= 6 {
				n++
			}
		}
		return n >= 3
	}, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	phaseOf := func(ts []time.Time) time.Duration {
		ts = ts[2:] // skip the first scrapes after start
		var sum time.Duration
		for _, x := range ts {
			sum += time.Duration(x.UnixNano() % int64(interval))
		}
		return sum / time.Duration(len(ts))
	}
	var phases []time.Duration
	for _, ts := range seen {
		phases = append(phases, phaseOf(ts))
	}
	// Two of the three connections scrape at the same phase (a and b); the
	// generous bound allows for scheduling on a loaded machine.
	close := 0
	for i := range phases {
		for j := i + 1; j < len(phases); j++ {
			d := (phases[i] - phases[j]) % interval
			if d < 0 {
				d = -d
			}
			if d > interval/2 {
				d = interval - d
			}
			if d < 40*time.Millisecond {
				close++
			}
		}
	}
	require.GreaterOrEqual(t, close, 1, "no two managers scraped at the same phase: %v", phases)
}

// serialAppendable lets several scrape loops share a teststorage.Appendable,
// which refuses a second open appender (and then fails every later scrape):
// each appender holds the lock from AppenderV2 until Commit or Rollback.
type serialAppendable struct {
	mtx sync.Mutex
	app *teststorage.Appendable
}

func serial(app *teststorage.Appendable) *serialAppendable { return &serialAppendable{app: app} }

func (s *serialAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	s.mtx.Lock()
	return &serialAppender{AppenderV2: s.app.AppenderV2(ctx), unlock: s.mtx.Unlock}
}

type serialAppender struct {
	storage.AppenderV2
	unlock func()
}

func (a *serialAppender) Commit() error {
	defer a.unlock()
	return a.AppenderV2.Commit()
}

func (a *serialAppender) Rollback() error {
	defer a.unlock()
	return a.AppenderV2.Rollback()
}

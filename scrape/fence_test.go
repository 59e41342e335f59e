package scrape

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

const fenceConfig = `
scrape_configs:
  - job_name: app
    scrape_interval: 200ms
    scrape_timeout: 100ms
`

// startManager runs a Manager with owner on the given targets, writing to
// app, until the test ends.
func startManager(t *testing.T, cfg *config.Config, owner Owner, app *teststorage.Appendable, reg *prometheus.Registry, targets ...string) *Manager {
	t.Helper()
	return startManagerOn(t, cfg, owner, serial(app), reg, targets...)
}

// startManagerOn is startManager writing to any appendable.
func startManagerOn(t *testing.T, cfg *config.Config, owner Owner, app storage.AppendableV2, reg *prometheus.Registry, targets ...string) *Manager {
	t.Helper()
	discovered := make(chan map[string][]*targetgroup.Group, 1)
	m, err := New(Options{
		Owner: owner, Discovered: discovered, PhaseSeed: "shoal/test",
		MinReshardInterval: time.Millisecond, DiscoveryReloadInterval: 10 * time.Millisecond,
	}, nil, app, reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	discovered <- map[string][]*targetgroup.Group{"app": {group("g", targets...)}}
	return m
}

// sampleTimes returns the timestamps of the shoal_test_value samples of
// instance in app, sorted.
func sampleTimes(app *teststorage.Appendable, instance string) []int64 {
	var ts []int64
	for _, s := range app.ResultSamples() {
		if s.L.Get(model.MetricNameLabel) == "shoal_test_value" && s.L.Get(model.InstanceLabel) == instance {
			ts = append(ts, s.T)
		}
	}
	slices.Sort(ts)
	return ts
}

// TestFenceSlotMatchesScrapes checks the fence's idea of a target's phase
// against where Prometheus actually scrapes: the fence reimplements
// Prometheus' unexported phase computation, and an upgrade that changes it
// must fail here.
func TestFenceSlotMatchesScrapes(t *testing.T) {
	targets := []string{metricsServer(t), metricsServer(t), metricsServer(t), metricsServer(t)}
	app := teststorage.NewAppendable()
	m := startManager(t, loadConfig(t, fenceConfig), &fakeOwner{ready: true, owns: ownAll}, app, prometheus.NewRegistry(), targets...)
	require.Eventually(t, func() bool {
		for _, tg := range targets {
			if len(sampleTimes(app, tg)) < 8 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond)
	_, ok := targetHash(m.TargetsActive()["app"][0])
	require.True(t, ok, "Prometheus' Target has no labels field of type labels.Labels any more")

	for _, tgt := range m.TargetsActive()["app"] {
		ts := sampleTimes(app, tgt.GetValue(model.AddressLabel))
		var offs []time.Duration
		for _, x := range ts[2:] {
			d := time.UnixMilli(x).Sub(m.fence.slot(tgt, x))
			if d < 0 {
				d = -d
			}
			offs = append(offs, d)
		}
		slices.Sort(offs)
		// A wrong phase puts the median anywhere in [0, 100ms]; a right one
		// within the timer's jitter.
		require.Less(t, offs[len(offs)/2], 25*time.Millisecond, "target %s: distances to the computed slots %v", tgt, offs)
	}
}

// TestFenceHandoffWritesEachSlotOnce runs two managers, the old and the new
// owner of one target, across an announced handoff instant. Both scrape the
// target around the instant (the filter keeps the old loop a scrape timeout
// longer and starts the new one ahead), and the fence lets exactly one of
// them write each slot: the series continues with one sample per interval,
// no gap, no duplicate, all of the old owner's samples before all of the new
// owner's.
func TestFenceHandoffWritesEachSlotOnce(t *testing.T) {
	const interval = 200 * time.Millisecond
	target := metricsServer(t)
	cfg := loadConfig(t, fenceConfig)
	at := time.Now().Add(1500 * time.Millisecond)
	owner := func(before bool) *fakeOwner {
		return &fakeOwner{changes: []time.Time{at}, ownsAt: func(_ uint64, t time.Time) bool { return t.Before(at) == before }}
	}
	oldApp, newApp := teststorage.NewAppendable(), teststorage.NewAppendable()
	oldReg, newReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	oldM := startManager(t, cfg, owner(true), oldApp, oldReg, target)
	startManager(t, cfg, owner(false), newApp, newReg, target)

	require.Eventually(t, func() bool { return time.Since(at) > time.Second }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(oldM.TargetsActive()["app"]) == 0 }, 5*time.Second, 10*time.Millisecond,
		"the old owner stops its loop after the instant")

	before, after := sampleTimes(oldApp, target), sampleTimes(newApp, target)
	require.NotEmpty(t, before)
	require.NotEmpty(t, after)
	require.Less(t, before[len(before)-1], after[0], "every old-owner sample precedes every new-owner sample")
	all := append(slices.Clone(before), after...)
	all = all[1:] // the first scrape can come early
	for i := 1; i < len(all); i++ {
		d := time.Duration(all[i]-all[i-1]) * time.Millisecond
		require.Greater(t, d, interval/2, "duplicate slot around %s (old %v, new %v)", time.UnixMilli(all[i]).Sub(at), before, after)
		require.Less(t, d, interval*3/2, "gap around %s (old %v, new %v)", time.UnixMilli(all[i]).Sub(at), before, after)
	}
	require.Positive(t, testutil.ToFloat64(oldM.fence.dropped)+counterValue(t, newReg, "shoal_fence_scrapes_dropped_total"),
		"the overlap was real: some scrape was discarded")
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestPhaseHashIsPrometheusTargetHash(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash uint64
		url  string
	}{
		{"zero", 0, ""},
		{"padded", 42, "http://10.0.0.1:9100/metrics"},
		{"sixteen digits", 1234567890123456, "http://a/metrics?x=1"},
		{"twenty digits", 18446744073709551615, "https://host.example:443/probe?module=http_2xx&target=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fnv.New64a()
			_, _ = fmt.Fprintf(h, "%016d", tc.hash)
			_, _ = h.Write([]byte(tc.url))
			require.Equal(t, h.Sum64(), phaseHash(tc.hash, tc.url))
		})
	}
}

// predOwner is a fakeOwner that names "old" as the previous owner of every
// key for slots right after its change instant.
type predOwner struct{ *fakeOwner }

func (o predOwner) HandedOverFrom(_ uint64, slot time.Time, within time.Duration) (string, time.Time) {
	for _, c := range o.Changes() {
		if c.After(slot.Add(-within)) && !c.After(slot) {
			return "old", c
		}
	}
	return "", time.Time{}
}

// handoffRecorder records the first sample timestamp of every commit whose
// appender was told it took the target over.
type handoffRecorder struct {
	*serialAppendable
	mtx   sync.Mutex
	froms []string
	first []int64
}

func (r *handoffRecorder) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recordingAppender{AppenderV2: r.serialAppendable.AppenderV2(ctx), r: r, first: -1}
}

type recordingAppender struct {
	storage.AppenderV2
	r     *handoffRecorder
	from  string
	first int64
}

func (a *recordingAppender) HandedOver(from string, _ time.Time) { a.from = from }

func (a *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.first < 0 {
		a.first = t
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *recordingAppender) Commit() error {
	if a.from != "" {
		a.r.mtx.Lock()
		a.r.froms, a.r.first = append(a.r.froms, a.from), append(a.r.first, a.first)
		a.r.mtx.Unlock()
	}
	return a.AppenderV2.Commit()
}

// TestFenceNamesThePreviousOwner checks that the new owner's storage is told,
// once, that its first scrape after a handoff follows another agent's.
func TestFenceNamesThePreviousOwner(t *testing.T) {
	target := metricsServer(t)
	at := time.Now().Add(time.Second)
	owner := predOwner{&fakeOwner{changes: []time.Time{at}, ownsAt: func(_ uint64, t time.Time) bool { return !t.Before(at) }}}
	app := teststorage.NewAppendable()
	rec := &handoffRecorder{serialAppendable: serial(app)}
	startManagerOn(t, loadConfig(t, fenceConfig), owner, rec, prometheus.NewRegistry(), target)

	require.Eventually(t, func() bool { return len(sampleTimes(app, target)) >= 5 }, 10*time.Second, 20*time.Millisecond)
	rec.mtx.Lock()
	defer rec.mtx.Unlock()
	require.Equal(t, []string{"old"}, rec.froms, "exactly the first owned scrape names the previous owner, though later ones are in the window too")
	require.Equal(t, sampleTimes(app, target)[0], rec.first[0], "and it is the first sample written")
}

// TestFenceInFlight: a scrape is in flight from the moment Prometheus takes
// its appender until it commits or rolls back; InFlight names those older
// than the bound, the longest first.
func TestFenceInFlight(t *testing.T) {
	f, err := newFence(nil, nopAppendable{}, "", nil)
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	f.now = func() time.Time { return now }
	slow, fast := filteredTarget(t, "slow:9100"), filteredTarget(t, "fast:9100")
	a1 := f.AppenderV2(promscrape.ContextWithTarget(context.Background(), slow))
	now = now.Add(time.Second)
	a2 := f.AppenderV2(promscrape.ContextWithTarget(context.Background(), fast))
	now = now.Add(600 * time.Millisecond)
	require.Equal(t, []uint64{targetKey(slow, nil)}, f.inFlight(time.Second, 4))
	require.Equal(t, []uint64{targetKey(slow, nil), targetKey(fast, nil)}, f.inFlight(500*time.Millisecond, 4))
	require.Len(t, f.inFlight(500*time.Millisecond, 1), 1)
	require.NoError(t, a1.Commit())
	require.NoError(t, a1.Commit(), "a second commit lands nothing twice")
	require.Equal(t, []uint64{targetKey(fast, nil)}, f.inFlight(500*time.Millisecond, 4))
	require.NoError(t, a2.Rollback())
	require.Empty(t, f.inFlight(0, 4))
}

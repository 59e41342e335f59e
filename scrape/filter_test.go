package scrape

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeOwner owns the keys its predicate accepts, at every instant, when
// ready; ownsAt, when set, decides instead, with changes as its instants.
// All can change under test.
type fakeOwner struct {
	mtx     sync.Mutex
	ready   bool
	owns    func(key uint64) bool
	ownsAt  func(key uint64, t time.Time) bool
	changes []time.Time
}

func (o *fakeOwner) OwnsAt(key uint64, t time.Time) bool {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	if o.ownsAt != nil {
		return o.ownsAt(key, t)
	}
	return o.ready && o.owns(key)
}

func (o *fakeOwner) Changes() []time.Time {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	return o.changes
}

func (o *fakeOwner) set(ready bool, owns func(uint64) bool) {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	o.ready, o.owns = ready, owns
}

func ownAll(uint64) bool  { return true }
func ownNone(uint64) bool { return false }

// ownURLs owns the keys of the given job's scrape URLs.
func ownURLs(job string, urls ...string) func(uint64) bool {
	k := newKeyer()
	keys := map[uint64]bool{}
	for _, u := range urls {
		keys[k.sum(job, u)] = true
	}
	return func(key uint64) bool { return keys[key] }
}

// fakeScraper stands in for Prometheus' scrape manager: its active targets are
// set by the test and DisableEndOfRunStalenessMarkers calls are recorded.
type fakeScraper struct {
	mtx      sync.Mutex
	active   map[string][]*promscrape.Target
	disabled map[string][]string // job -> URLs
}

func (s *fakeScraper) TargetsActive() map[string][]*promscrape.Target {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return s.active
}

func (s *fakeScraper) DisableEndOfRunStalenessMarkers(job string, targets []*promscrape.Target) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if s.disabled == nil {
		s.disabled = map[string][]string{}
	}
	for _, t := range targets {
		s.disabled[job] = append(s.disabled[job], t.URL().String())
	}
}

func (s *fakeScraper) disabledURLs() map[string][]string {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return s.disabled
}

// activate makes the fake report the owned targets of a filtered snapshot as
// active, as Prometheus' scrape manager would after a reload.
func (s *fakeScraper) activate(t *testing.T, cfg *config.Config, tsets map[string][]*targetgroup.Group) {
	t.Helper()
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	byJob := map[string]*config.ScrapeConfig{}
	for _, sc := range scfgs {
		byJob[sc.JobName] = sc
	}
	active := map[string][]*promscrape.Target{}
	for job, groups := range tsets {
		for _, g := range groups {
			ts, errs := promscrape.TargetsFromGroup(g, byJob[job], nil, labels.NewBuilder(labels.EmptyLabels()))
			require.Empty(t, errs)
			active[job] = append(active[job], ts...)
		}
	}
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.active = active
}

const twoJobs = `
scrape_configs:
  - job_name: a
  - job_name: b
    relabel_configs:
      - source_labels: [drop]
        regex: "yes"
        action: drop
      - source_labels: [__meta_host]
        regex: (.+)
        target_label: __address__
        replacement: ${1}:9100
`

func loadConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load(yaml, nil)
	require.NoError(t, err)
	return cfg
}

func group(source string, addrs ...string) *targetgroup.Group {
	g := &targetgroup.Group{Source: source, Labels: model.LabelSet{"dc": "x"}}
	for _, a := range addrs {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
	}
	return g
}

// addresses flattens a filtered snapshot to job -> source -> sorted addresses.
func addresses(tsets map[string][]*targetgroup.Group) map[string]map[string][]string {
	res := map[string]map[string][]string{}
	for job, groups := range tsets {
		res[job] = map[string][]string{}
		for _, g := range groups {
			addrs := []string{}
			for _, t := range g.Targets {
				addrs = append(addrs, string(t[model.AddressLabel]))
			}
			sort.Strings(addrs)
			res[job][g.Source] = addrs
		}
	}
	return res
}

func newTestFilter(t testing.TB, opts FilterOptions, cfg *config.Config) *Filter {
	t.Helper()
	f, err := NewFilter(opts, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, f.ApplyConfig(cfg))
	return f
}

func TestFilterPass(t *testing.T) {
	tests := []struct {
		name           string
		ready          bool
		owns           func(uint64) bool
		in             map[string][]*targetgroup.Group
		want           map[string]map[string][]string
		wantDiscovered int
		wantOwned      int
	}{
		{
			name:  "split per target not per group",
			ready: true,
			owns:  ownURLs("a", "http://h1:80/metrics", "http://h3:80/metrics"),
			in:    map[string][]*targetgroup.Group{"a": {group("consul/web", "h1:80", "h2:80", "h3:80")}},
			want:  map[string]map[string][]string{"a": {"consul/web": {"h1:80", "h3:80"}}},

			wantDiscovered: 3, wantOwned: 2,
		},
		{
			name:  "groups forwarded when nothing is owned",
			ready: true,
			owns:  ownNone,
			in: map[string][]*targetgroup.Group{
				"a": {group("g1", "h1:80"), group("g2", "h2:80")},
				"b": {group("g3")},
			},
			want: map[string]map[string][]string{"a": {"g1": {}, "g2": {}}, "b": {"g3": {}}},

			wantDiscovered: 2, wantOwned: 0,
		},
		{
			name:  "not ready owns nothing",
			ready: false,
			owns:  ownAll,
			in:    map[string][]*targetgroup.Group{"a": {group("g1", "h1:80")}},
			want:  map[string]map[string][]string{"a": {"g1": {}}},

			wantDiscovered: 1, wantOwned: 0,
		},
		{
			name:  "targets dropped by relabeling are dropped",
			ready: true,
			owns:  ownAll,
			in: map[string][]*targetgroup.Group{"b": {{
				Source: "g",
				Targets: []model.LabelSet{
					{model.AddressLabel: "h1:80"},
					{model.AddressLabel: "h2:80", "drop": "yes"},
				},
			}}},
			want: map[string]map[string][]string{"b": {"g": {"h1:80"}}},

			wantDiscovered: 1, wantOwned: 1,
		},
		{
			name:  "targets relabeled to one URL share one key",
			ready: true,
			owns:  ownURLs("b", "http://node:9100/metrics"),
			in: map[string][]*targetgroup.Group{"b": {{
				Source: "g",
				Targets: []model.LabelSet{
					{model.AddressLabel: "10.0.0.1:80", "__meta_host": "node"},
					{model.AddressLabel: "10.0.0.2:80", "__meta_host": "node"},
				},
			}}},
			want: map[string]map[string][]string{"b": {"g": {"10.0.0.1:80", "10.0.0.2:80"}}},

			wantDiscovered: 1, wantOwned: 1,
		},
		{
			name:  "job without scrape config forwards empty groups",
			ready: true,
			owns:  ownAll,
			in:    map[string][]*targetgroup.Group{"unknown": {group("g", "h1:80")}},
			want:  map[string]map[string][]string{"unknown": {"g": {}}},

			wantDiscovered: 0, wantOwned: 0,
		},
		{
			name:  "invalid targets are skipped",
			ready: true,
			owns:  ownAll,
			in:    map[string][]*targetgroup.Group{"a": {{Source: "g", Targets: []model.LabelSet{{"foo": "bar"}, {model.AddressLabel: "h1:80"}}}}},
			want:  map[string]map[string][]string{"a": {"g": {"h1:80"}}},

			wantDiscovered: 1, wantOwned: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner := &fakeOwner{ready: tt.ready, owns: tt.owns}
			f := newTestFilter(t, FilterOptions{Owner: owner}, loadConfig(t, twoJobs))
			f.snapshot = tt.in

			out, ok := f.pass()
			require.True(t, ok)
			require.Equal(t, tt.want, addresses(out))
			for job, groups := range out {
				for i, g := range groups {
					require.Equal(t, tt.in[job][i].Labels, g.Labels, "group labels kept")
				}
			}
			s := f.Stats()
			require.Equal(t, tt.wantDiscovered, s.Discovered)
			require.Equal(t, tt.wantOwned, s.Owned)
			require.Equal(t, float64(tt.wantOwned), testutil.ToFloat64(f.metrics.owned))
		})
	}
}

func TestFilterPassWithoutSnapshot(t *testing.T) {
	f := newTestFilter(t, FilterOptions{Owner: &fakeOwner{owns: ownAll}}, loadConfig(t, twoJobs))
	_, ok := f.pass()
	require.False(t, ok)
}

func TestFilterReplicaLabel(t *testing.T) {
	owner := &fakeOwner{ready: true, owns: ownURLs("a", "http://h1:80/metrics")}
	f := newTestFilter(t, FilterOptions{Owner: owner, NodeName: "node-1", ReplicaLabel: "replica"}, loadConfig(t, twoJobs))
	in := group("g", "h1:80", "h2:80")
	f.snapshot = map[string][]*targetgroup.Group{"a": {in}}

	out, ok := f.pass()
	require.True(t, ok)
	require.Len(t, out["a"][0].Targets, 1)
	require.Equal(t, model.LabelValue("node-1"), out["a"][0].Targets[0]["replica"])
	require.NotContains(t, in.Targets[0], model.LabelName("replica"), "discovery's label sets are not modified")
}

func TestNewFilterValidation(t *testing.T) {
	owner := &fakeOwner{}
	tests := []struct {
		name    string
		opts    FilterOptions
		wantErr string
	}{
		{"no owner", FilterOptions{}, "filter owner is required"},
		{"negative interval", FilterOptions{Owner: owner, MinReshardInterval: -time.Second}, "min reshard interval must not be negative, got -1s"},
		{"reserved replica label", FilterOptions{Owner: owner, NodeName: "n", ReplicaLabel: "__replica__"}, `replica label must not start with "__"`},
		{"replica label without node", FilterOptions{Owner: owner, ReplicaLabel: "replica"}, `node name is required when replica label "replica" is set`},
		{"invalid replica label", FilterOptions{Owner: owner, NodeName: "n", ReplicaLabel: "a\xff"}, "replica label must match [a-zA-Z_][a-zA-Z0-9_]*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFilter(tt.opts, nil, prometheus.NewRegistry())
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// runFilter runs f until the test ends and returns its input and output.
func runFilter(t *testing.T, f *Filter) (chan<- map[string][]*targetgroup.Group, <-chan map[string][]*targetgroup.Group) {
	t.Helper()
	in := make(chan map[string][]*targetgroup.Group)
	out := make(chan map[string][]*targetgroup.Group)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, in, out) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return in, out
}

func receive(t *testing.T, out <-chan map[string][]*targetgroup.Group) map[string][]*targetgroup.Group {
	t.Helper()
	select {
	case ts := <-out:
		return ts
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no filtered snapshot within 10s")
		return nil
	}
}

func TestFilterNotifyMovesTargetsWithoutStaleness(t *testing.T) {
	cfg := loadConfig(t, twoJobs)
	owner := &fakeOwner{ready: true, owns: ownURLs("a", "http://h1:80/metrics", "http://h2:80/metrics")}
	f := newTestFilter(t, FilterOptions{Owner: owner, MinReshardInterval: time.Millisecond}, cfg)
	scraper := &fakeScraper{}
	f.scraper = scraper
	in, out := runFilter(t, f)

	in <- map[string][]*targetgroup.Group{"a": {group("g", "h1:80", "h2:80", "h3:80")}}
	first := receive(t, out)
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h1:80", "h2:80"}}}, addresses(first))
	scraper.activate(t, cfg, first)

	// A peer joins and takes h2; h3 moves here.
	owner.set(true, ownURLs("a", "http://h1:80/metrics", "http://h3:80/metrics"))
	f.Notify()
	second := receive(t, out)
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h1:80", "h3:80"}}}, addresses(second))
	require.Equal(t, map[string][]string{"a": {"http://h2:80/metrics"}}, scraper.disabledURLs(),
		"only the target that moved to a peer loses its staleness markers")
	s := f.Stats()
	require.Equal(t, uint64(1), s.MovedIn)
	require.Equal(t, uint64(1), s.MovedOut)
	require.Equal(t, 2, s.Owned)
	scraper.activate(t, cfg, second)

	// Discovery removes h1: it keeps its staleness markers.
	in <- map[string][]*targetgroup.Group{"a": {group("g", "h2:80", "h3:80")}}
	third := receive(t, out)
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h3:80"}}}, addresses(third))
	require.Equal(t, map[string][]string{"a": {"http://h2:80/metrics"}}, scraper.disabledURLs())
	require.Equal(t, uint64(1), f.Stats().MovedOut)
}

// TestFilterScheduledHandoff: around an announced instant the filter runs
// the loop of a target moving out until a scrape timeout after the instant,
// and the loop of a target moving in from before the instant; the fence
// decides which of their scrapes count.
func TestFilterScheduledHandoff(t *testing.T) {
	cfg := loadConfig(t, twoJobs) // scrape_timeout 10s by default
	outKey := newKeyer().sum("a", "http://h1:80/metrics")
	inKey := newKeyer().sum("a", "http://h2:80/metrics")
	at := time.Now().Add(time.Hour)
	owner := &fakeOwner{changes: []time.Time{at}, ownsAt: func(key uint64, t time.Time) bool {
		if t.Before(at) {
			return key == outKey
		}
		return key == inKey
	}}
	f := newTestFilter(t, FilterOptions{Owner: owner}, cfg)
	<-f.trigger // drain ApplyConfig's request; no Run in this test
	f.snapshot = map[string][]*targetgroup.Group{"a": {group("g", "h1:80", "h2:80", "h3:80")}}

	out, ok := f.pass()
	require.True(t, ok)
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h1:80"}}}, addresses(out),
		"an hour ahead: the incoming target does not run yet")
	ahead := time.Minute + startAheadSlack // default scrape_interval + slack
	require.Equal(t, at.Add(-ahead), f.expires(), "the decision expires when the incoming loop must start")

	owner.mtx.Lock()
	owner.changes = []time.Time{time.Now().Add(30 * time.Second)}
	at = owner.changes[0]
	owner.mtx.Unlock()
	out, _ = f.pass()
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h1:80", "h2:80"}}}, addresses(out),
		"within an interval of the instant: the outgoing target still runs, the incoming one already runs")
	require.Equal(t, at.Add(10*time.Second), f.expires(), "the decision expires a scrape timeout after the instant")

	// Just after the instant: the outgoing loop may still be finishing its
	// last owned scrape.
	owner.mtx.Lock()
	owner.changes = []time.Time{time.Now().Add(-time.Second)}
	at = owner.changes[0]
	owner.mtx.Unlock()
	out, _ = f.pass()
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h1:80", "h2:80"}}}, addresses(out))

	// A scrape timeout later it goes, without staleness markers.
	owner.mtx.Lock()
	owner.changes = []time.Time{time.Now().Add(-11 * time.Second)}
	at = owner.changes[0]
	owner.mtx.Unlock()
	out, _ = f.pass()
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h2:80"}}}, addresses(out))
	require.Equal(t, uint64(1), f.Stats().MovedOut)
	require.True(t, f.expires().IsZero(), "no change pending")
}

func TestFilterCoalescesBursts(t *testing.T) {
	const interval = 200 * time.Millisecond
	owner := &fakeOwner{ready: true, owns: ownAll}
	f := newTestFilter(t, FilterOptions{Owner: owner, MinReshardInterval: interval}, loadConfig(t, twoJobs))
	in, out := runFilter(t, f)

	in <- map[string][]*targetgroup.Group{"a": {group("g", "h1:80")}}
	receive(t, out)
	start := time.Now()
	for range 50 {
		f.Notify()
	}
	receive(t, out)
	require.GreaterOrEqual(t, time.Since(start), interval/2, "the second pass waits for the rate limit")
	require.Equal(t, uint64(2), f.Stats().Reshards, "50 notifies make one pass")

	// A later discovery update is the next pass: no notify pass was left over.
	in <- map[string][]*targetgroup.Group{"a": {group("g", "h2:80")}}
	require.Equal(t, map[string]map[string][]string{"a": {"g": {"h2:80"}}}, addresses(receive(t, out)))
	require.Equal(t, uint64(3), f.Stats().Reshards)
}

func TestFilterApplyConfigRefilters(t *testing.T) {
	owner := &fakeOwner{ready: true, owns: ownAll}
	f := newTestFilter(t, FilterOptions{Owner: owner, MinReshardInterval: time.Millisecond}, loadConfig(t, "scrape_configs: [{job_name: other}]"))
	in, out := runFilter(t, f)

	in <- map[string][]*targetgroup.Group{"a": {group("g", "h1:80")}}
	require.Equal(t, map[string]map[string][]string{"a": {"g": {}}}, addresses(receive(t, out)))

	require.NoError(t, f.ApplyConfig(loadConfig(t, twoJobs)))
	// A pass already scheduled before ApplyConfig may still emit the old
	// result; the re-filter must follow.
	want := map[string]map[string][]string{"a": {"g": {"h1:80"}}}
	deadline := time.Now().Add(10 * time.Second)
	for got := addresses(receive(t, out)); !assert.ObjectsAreEqual(want, got); got = addresses(receive(t, out)) {
		require.True(t, time.Now().Before(deadline), "no re-filtered snapshot after ApplyConfig, last %v", got)
	}
}

func TestFilterTargets(t *testing.T) {
	owner := &fakeOwner{ready: true, owns: ownURLs("b", "http://node:9100/metrics")}
	f := newTestFilter(t, FilterOptions{Owner: owner}, loadConfig(t, twoJobs))
	f.snapshot = map[string][]*targetgroup.Group{
		"a": {group("g", "h1:80")},
		"b": {{Source: "g", Targets: []model.LabelSet{
			{model.AddressLabel: "10.0.0.1:80", "__meta_host": "node"},
			{model.AddressLabel: "10.0.0.2:80", "__meta_host": "node"},
			{model.AddressLabel: "10.0.0.3:80", "drop": "yes"},
		}}},
	}
	_, ok := f.pass()
	require.True(t, ok)

	got := f.Targets()
	require.Len(t, got, 3)
	require.Equal(t, "a", got[0].Job)
	require.Equal(t, "http://h1:80/metrics", got[0].URL)
	require.False(t, got[0].Owned)
	require.Equal(t, "h1:80", got[0].Labels.Get(model.InstanceLabel))
	require.Equal(t, "http://node:9100/metrics", got[1].URL)
	require.Equal(t, got[1].Key, got[2].Key, "same URL, same key")
	require.True(t, got[1].Owned)
	require.NotEqual(t, got[0].Key, got[1].Key)
}

func TestKeyIsStable(t *testing.T) {
	// The key is part of the cluster protocol: every agent, of every version,
	// must compute the same one. Changing it moves targets during upgrades.
	require.Equal(t, xxhash.Sum64String("a\x00http://h1:80/metrics"), newKeyer().sum("a", "http://h1:80/metrics"))
	require.Equal(t, uint64(0x25eb0679104f164), newKeyer().sum("a", "http://h1:80/metrics"))
}

// TestFilterOnReshard checks that the hook runs on the filter's goroutine
// after a poke, also before anything is discovered, and after each pass has
// been handed on: a notifier only pokes and never waits for it.
func TestFilterOnReshard(t *testing.T) {
	calls := make(chan struct{}, 10)
	f := newTestFilter(t, FilterOptions{
		Owner:              &fakeOwner{ready: true, owns: ownAll},
		MinReshardInterval: time.Millisecond,
		OnReshard:          func() { calls <- struct{}{} },
	}, loadConfig(t, twoJobs))
	in, out := runFilter(t, f)
	wait := func() {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "OnReshard not called within 10s")
		}
	}

	f.Notify() // nothing discovered yet
	wait()
	in <- map[string][]*targetgroup.Group{"a": {group("g", "h1:80")}}
	receive(t, out)
	wait()
	require.Equal(t, 1, f.Stats().Owned, "the hook sees the pass's result")
	f.Notify()
	receive(t, out)
	wait()
}

package delivery

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// mergedThenEncoded is how the labels were encoded before encodeLabelsExt:
// external labels set on a builder where the series lacks them.
func mergedThenEncoded(ls, ext labels.Labels) []byte {
	b := labels.NewBuilder(ls)
	ext.Range(func(l labels.Label) {
		if !ls.Has(l.Name) {
			b.Set(l.Name, l.Value)
		}
	})
	return encodeLabels(nil, b.Labels())
}

func TestEncodeLabelsExtMatchesTheBuilder(t *testing.T) {
	long := string(make([]byte, 200)) // lengths past one varint byte
	ls := labels.FromStrings("__name__", "m", "job", "j", "zone", "z")
	for _, tc := range []struct {
		name string
		ls   labels.Labels
		ext  labels.Labels
	}{
		{"no external labels", ls, labels.EmptyLabels()},
		{"first", ls, labels.FromStrings("_a", "x")},
		{"between", ls, labels.FromStrings("cluster", "eu1")},
		{"last", ls, labels.FromStrings("zz", "x")},
		{"several", ls, labels.FromStrings("_a", "1", "cluster", "eu1", "region", "r", "zz", "2")},
		{"the series' own label wins", ls, labels.FromStrings("job", "external", "zone", "external")},
		{"empty series", labels.EmptyLabels(), labels.FromStrings("cluster", "eu1")},
		{"long name and value", labels.FromStrings("__name__", "m", "l"+long, long), labels.FromStrings("cluster", long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := encodeLabelsExt([]byte("prefix"), tc.ls, labelSlice(tc.ext))
			require.Equal(t, append([]byte("prefix"), mergedThenEncoded(tc.ls, tc.ext)...), got)
		})
	}
}

func TestSeriesCacheHashCollisions(t *testing.T) {
	var c seriesCache
	c.hash = func(labels.Labels) uint64 { return 42 } // every series collides
	c.init()
	a := labels.FromStrings("__name__", "a")
	b := labels.FromStrings("__name__", "b")
	d := labels.FromStrings("__name__", "d")

	sa, sb, sd := c.get(0, a), c.get(0, b), c.get(0, d)
	require.NotEqual(t, sa.ref, sb.ref)
	require.NotEqual(t, sb.ref, sd.ref)
	require.Equal(t, 3, c.len())
	for _, tc := range []struct {
		ls labels.Labels
		s  *series
	}{{a, sa}, {b, sb}, {d, sd}} {
		require.Same(t, tc.s, c.get(0, tc.ls), "found by labels among colliding series: %s", tc.ls)
		require.Same(t, tc.s, c.get(tc.s.ref, tc.ls), "found by ref: %s", tc.ls)
	}

	// b, in the middle of the chain, goes; a and d stay.
	c.gc()
	c.get(sa.ref, a)
	c.get(sd.ref, d)
	c.gc()
	require.Equal(t, 2, c.len())
	require.Same(t, sa, c.get(0, a))
	require.Same(t, sd, c.get(0, d))

	// A new series takes b's slot, hence its ref: the ref b's scrape cache
	// still holds finds b again, not the new series.
	e := labels.FromStrings("__name__", "e")
	se := c.get(0, e)
	require.Equal(t, sb.ref, se.ref, "the slot is reused")
	nb := c.get(sb.ref, b)
	require.NotSame(t, se, nb)
	require.Equal(t, b, nb.ls)
	require.NotEqual(t, se.ref, nb.ref)
	require.Same(t, se, c.get(se.ref, e))
	require.Same(t, nb, c.get(0, b))
	require.Equal(t, 4, c.len())

	// Everything goes: the chain and the map entry with it.
	c.gc()
	c.gc()
	c.gc()
	require.Zero(t, c.len())
	require.Empty(t, c.byHash)
	require.Empty(t, c.slots)
	require.Empty(t, c.free)
}

func TestSeriesCacheGC(t *testing.T) {
	var c seriesCache
	c.init()
	kept := labels.FromStrings("__name__", "kept")
	gone := labels.FromStrings("__name__", "gone")
	sg, sk := c.get(0, gone), c.get(0, kept)
	c.gc()
	require.Equal(t, 2, c.len(), "a series seen in the last round stays")
	c.get(sk.ref, kept)
	c.gc()
	require.Equal(t, 1, c.len(), "a series unseen for two rounds goes")
	require.Same(t, sk, c.get(0, kept))
	require.NotSame(t, sg, c.get(sg.ref, gone), "its ref no longer finds it")
	require.Len(t, c.byHash, 2)
	require.Equal(t, 2, c.len())

	// The slots shrink with the series.
	for i := range 1000 {
		c.get(0, labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)))
	}
	require.Equal(t, 1002, c.len())
	for range 2 {
		c.get(sk.ref, kept)
		c.gc()
	}
	require.Equal(t, 1, c.len())
	require.LessOrEqual(t, len(c.slots), 2)
	require.Less(t, cap(c.slots), 1000, "the slice is given back")
}

func relabelEndpoint(t *testing.T, ext labels.Labels, rules string) *endpoint {
	t.Helper()
	rw := &config.RemoteWriteConfig{}
	if rules != "" {
		cfg, err := config.Load("remote_write:\n  - url: http://localhost/\n    write_relabel_configs:\n"+rules, nil)
		require.NoError(t, err)
		rw = cfg.RemoteWriteConfigs[0]
	}
	return &endpoint{cfg: rw, ext: ext}
}

func TestEncodedPerEndpoint(t *testing.T) {
	ext := labels.FromStrings("cluster", "eu1")
	eps := []*endpoint{
		relabelEndpoint(t, ext, ""),
		relabelEndpoint(t, ext, "      - {source_labels: [__name__], regex: dropped, action: drop}\n"),
		relabelEndpoint(t, ext, "      - {regex: zone, action: labeldrop}\n"),
		relabelEndpoint(t, labels.EmptyLabels(), ""),
	}
	var c seriesCache
	c.init()
	kept := labels.FromStrings("__name__", "m", "zone", "z")
	drop := labels.FromStrings("__name__", "dropped", "zone", "z")
	withExt := mergedThenEncoded(kept, ext)

	var le labelEncoder
	got := c.get(0, kept).encoded(1, eps, &le)
	require.Equal(t, withExt, got[0], "no relabeling")
	require.Equal(t, withExt, got[1], "relabeling that keeps the series as it is")
	require.Equal(t, encodeLabels(nil, labels.FromStrings("__name__", "m", "cluster", "eu1")), got[2], "relabeling that changes it")
	require.Equal(t, encodeLabels(nil, kept), got[3], "no external labels")
	r := c.get(0, kept).rel.Load()
	require.Nil(t, r.enc[1], "an unchanged series keeps no encoding")

	// Series that no endpoint changes share one outcome.
	o1, o2 := labels.FromStrings("__name__", "o1"), labels.FromStrings("__name__", "o2")
	for _, ls := range []labels.Labels{o1, o2} {
		got = c.get(0, ls).encoded(1, eps, &le)
		for i := range 3 {
			require.Equal(t, mergedThenEncoded(ls, ext), got[i], "endpoint %d", i)
		}
	}
	require.Same(t, c.get(0, o1).rel.Load(), c.get(0, o2).rel.Load())
	require.NotSame(t, c.get(0, o1).rel.Load(), r)

	got = c.get(0, drop).encoded(1, eps, &le)
	require.Equal(t, mergedThenEncoded(drop, ext), got[0])
	require.Nil(t, got[1], "dropped by relabeling")
	require.Equal(t, encodeLabels(nil, labels.FromStrings("__name__", "dropped", "cluster", "eu1")), got[2])

	// A new epoch (a reload) relabels again with the endpoints' new rules.
	eps[1].cfg.WriteRelabelConfigs = []*relabel.Config{{
		SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("m"), Action: relabel.Drop,
		Separator: ";", NameValidationScheme: model.UTF8Validation,
	}}
	le = labelEncoder{}
	got = c.get(0, kept).encoded(2, eps, &le)
	require.Nil(t, got[1])
	got = c.get(0, drop).encoded(2, eps, &le)
	require.Equal(t, mergedThenEncoded(drop, ext), got[1])
}

// TestStaleRefAppendsItsOwnLabels: a scrape cache can hand back the ref of
// a series the cache forgot, whose slot a new series took; the sample must
// still go out with its own labels.
func TestStaleRefAppendsItsOwnLabels(t *testing.T) {
	s, _ := open(t, t.TempDir(), testConfig(t, "http://127.0.0.1:1"), Options{})
	defer func() { require.NoError(t, s.Close(0)) }()
	old := labels.FromStrings("__name__", "old")
	fresh := labels.FromStrings("__name__", "fresh")

	app := s.AppenderV2(context.Background())
	oldRef, err := app.Append(0, old, 0, 1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Rollback())
	s.cache.gc()
	s.cache.gc() // old is forgotten
	app = s.AppenderV2(context.Background())
	freshRef, err := app.Append(0, fresh, 0, 2000, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Equal(t, oldRef, freshRef, "the new series took the slot")
	ref, err := app.Append(oldRef, old, 0, 2000, 3, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NotEqual(t, freshRef, ref)

	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(app.(*appender).bufs[0]))
	require.Len(t, req.Timeseries, 2)
	require.Equal(t, `{__name__="fresh", cluster="eu1"}`, labelsOf(req.Timeseries[0]).String())
	require.Equal(t, `{__name__="old", cluster="eu1"}`, labelsOf(req.Timeseries[1]).String())
	require.Equal(t, 3.0, req.Timeseries[1].Samples[0].Value)
	require.NoError(t, app.Rollback())
}

func labelsOf(ts prompb.TimeSeries) labels.Labels {
	b := labels.NewScratchBuilder(len(ts.Labels))
	for _, l := range ts.Labels {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// plainConfig is testConfig without write relabeling.
func plainConfig(t *testing.T, u string) *config.Config {
	t.Helper()
	cfg := testConfig(t, u)
	cfg.RemoteWriteConfigs[0].WriteRelabelConfigs = nil
	return cfg
}

// TestWithoutRelabelingNothingIsKeptPerSeries: without write relabeling the
// storage keeps no series, and the refs it hands out are non-zero, distinct
// per series and stable, as the scrape cache's staleness tracking needs.
func TestWithoutRelabelingNothingIsKeptPerSeries(t *testing.T) {
	s, _ := open(t, t.TempDir(), plainConfig(t, "http://127.0.0.1:1"), Options{})
	defer func() { require.NoError(t, s.Close(0)) }()
	const n = 1000
	ls := make([]labels.Labels, n)
	refs := make([]storage.SeriesRef, n)
	for i := range ls {
		ls[i] = labels.FromStrings("__name__", "m", "i", strconv.Itoa(i))
	}
	for round := range 2 {
		app := s.AppenderV2(context.Background())
		seen := map[storage.SeriesRef]bool{}
		for i := range ls {
			ref, err := app.Append(refs[i], ls[i], 0, int64(1000*(round+1)), 1, nil, nil, storage.AOptions{})
			require.NoError(t, err)
			require.NotZero(t, ref)
			if round == 1 {
				require.Equal(t, refs[i], ref, "the ref handed back is kept")
			}
			require.False(t, seen[ref], "two series share ref %d", ref)
			seen[ref] = true
			refs[i] = ref
		}
		var req prompb.WriteRequest
		require.NoError(t, req.Unmarshal(app.(*appender).bufs[0]))
		require.Len(t, req.Timeseries, n)
		require.Equal(t, `{__name__="m", cluster="eu1", i="7"}`, labelsOf(req.Timeseries[7]).String())
		require.NoError(t, app.Commit())
	}
	require.Zero(t, s.cache.len(), "series kept without relabeling")
}

// TestRelabelingAddedByReloadAppliesToKnownRefs: refs handed out while no
// endpoint relabeled are taken back when a reload adds write relabeling, and
// the relabeling applies to their series.
func TestRelabelingAddedByReloadAppliesToKnownRefs(t *testing.T) {
	s, _ := open(t, t.TempDir(), plainConfig(t, "http://127.0.0.1:1"), Options{})
	defer func() { require.NoError(t, s.Close(0)) }()
	kept, drop := labels.FromStrings("__name__", "m"), labels.FromStrings("__name__", "dropped")
	app := s.AppenderV2(context.Background())
	keptRef, err := app.Append(0, kept, 0, 1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	dropRef, err := app.Append(0, drop, 0, 1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	require.NoError(t, s.ApplyConfig(testConfig(t, "http://127.0.0.1:1")))
	app = s.AppenderV2(context.Background())
	newKept, err := app.Append(keptRef, kept, 0, 2000, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	newDrop, err := app.Append(dropRef, drop, 0, 2000, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NotZero(t, newKept)
	require.NotEqual(t, newKept, newDrop)
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(app.(*appender).bufs[0]))
	require.Len(t, req.Timeseries, 1, "the dropped series is dropped")
	require.Equal(t, `{__name__="m", cluster="eu1"}`, labelsOf(req.Timeseries[0]).String())
	require.NoError(t, app.Rollback())
	require.Equal(t, 2, s.cache.len())
}

// TestSeriesCountsEachTargetsLatestScrape: Series is the sum of the
// series of every target's latest commit, with or without a series cache.
func TestSeriesCountsEachTargetsLatestScrape(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*testing.T, string) *config.Config
	}{{"plain", plainConfig}, {"write_relabel", testConfig}} {
		t.Run(tc.name, func(t *testing.T) {
			s, reg := open(t, t.TempDir(), tc.cfg(t, "http://127.0.0.1:1"), Options{})
			defer func() { require.NoError(t, s.Close(0)) }()
			target := func(addr string) context.Context {
				return promscrape.ContextWithTarget(context.Background(),
					promscrape.NewTarget(labels.FromStrings("__address__", addr), &config.ScrapeConfig{}, nil, nil))
			}
			a, b := target("a:9100"), target("b:9100")
			commit := func(ctx context.Context, n int, ts int64) {
				app := s.AppenderV2(ctx)
				for i := range n {
					_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), 0, ts, 1, nil, nil, storage.AOptions{})
					require.NoError(t, err)
				}
				require.NoError(t, app.Commit())
			}
			commit(a, 30, 1000)
			commit(b, 50, 1000)
			require.Equal(t, 80, s.Series())
			commit(a, 20, 2000) // a target lost series
			require.Equal(t, 70, s.Series())
			mfs, err := reg.Gather()
			require.NoError(t, err)
			var gauge float64
			for _, mf := range mfs {
				if mf.GetName() == "shoal_delivery_series" {
					gauge = mf.GetMetric()[0].GetGauge().GetValue()
				}
			}
			require.Equal(t, 70.0, gauge, "shoal_delivery_series")
			require.Zero(t, s.active.count(time.Now().Add(activeWindow+time.Second)), "targets that stopped stop counting")
		})
	}
}

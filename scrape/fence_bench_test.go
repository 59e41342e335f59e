package scrape

import (
	"context"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// nopAppendable discards everything, so that the benchmark measures the
// fence alone.
type nopAppendable struct{}

func (nopAppendable) AppenderV2(context.Context) storage.AppenderV2 { return nopAppender{} }

type nopAppender struct{}

func (nopAppender) Append(ref storage.SeriesRef, _ labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	return ref, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }

// filteredTarget returns the scrape engine's Target for addr as it is built
// from the filter's output, i.e. with whatever the filter attaches to it.
func filteredTarget(tb testing.TB, addr string) *promscrape.Target {
	tb.Helper()
	cfg := loadConfig(tb, fenceConfig)
	f, err := NewFilter(FilterOptions{Owner: &fakeOwner{ready: true, owns: ownAll}}, nil, nil)
	require.NoError(tb, err)
	require.NoError(tb, f.ApplyConfig(cfg))
	f.snapshot = map[string][]*targetgroup.Group{"app": {group("g", addr)}}
	res, ok := f.pass()
	require.True(tb, ok)
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(tb, err)
	ts, errs := promscrape.TargetsFromGroup(res["app"][0], scfgs[0], nil, labels.NewBuilder(labels.EmptyLabels()))
	require.Empty(tb, errs)
	require.Len(tb, ts, 1)
	return ts[0]
}

// BenchmarkFenceScrape is the fence's cost per scrape: an appender from a
// scrape loop's context, one sample judged against the owner, a commit.
func BenchmarkFenceScrape(b *testing.B) {
	fence, err := newFence(&fakeOwner{ready: true, owns: ownAll}, nopAppendable{}, "shoal/bench", nil)
	require.NoError(b, err)
	ctx := promscrape.ContextWithTarget(context.Background(), filteredTarget(b, "10.0.0.1:9100"))
	ls := labels.FromStrings(model.MetricNameLabel, "up")
	ts := int64(1_700_000_000_000)
	b.ReportAllocs()
	for b.Loop() {
		app := fence.AppenderV2(ctx)
		ts += 15_000
		if _, err := app.Append(0, ls, 0, ts, 1, nil, nil, storage.AOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

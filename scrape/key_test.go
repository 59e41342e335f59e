package scrape

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestFormatKey(t *testing.T) {
	for _, key := range []uint64{0, 1, 0xabc, 1<<64 - 1, 0x0123456789abcdef} {
		v := string(formatKey(key))
		require.Len(t, v, 16)
		back, err := strconv.ParseUint(v, 16, 64)
		require.NoError(t, err)
		require.Equal(t, key, back)
	}
}

// TestFilterCarriesKey checks that every owned target leaves the filter with
// its key, and that the scrape engine's Target keeps it for the fence.
func TestFilterCarriesKey(t *testing.T) {
	cfg := loadConfig(t, twoJobs)
	f := newTestFilter(t, FilterOptions{Owner: &fakeOwner{ready: true, owns: ownAll}}, cfg)
	in := group("g", "h1:80", "h2:80")
	f.snapshot = map[string][]*targetgroup.Group{"a": {in}}
	out, ok := f.pass()
	require.True(t, ok)
	require.Len(t, out["a"][0].Targets, 2)
	require.NotContains(t, in.Targets[0], model.LabelName(KeyLabel), "discovery's label sets are not modified")

	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	ts, errs := promscrape.TargetsFromGroup(out["a"][0], scfgs[0], nil, labels.NewBuilder(labels.EmptyLabels()))
	require.Empty(t, errs)
	require.Len(t, ts, 2)
	k := newKeyer()
	for _, tgt := range ts {
		want := k.sum("a", tgt.URL().String())
		require.Equal(t, string(formatKey(want)), tgt.GetValue(KeyLabel))
		require.Equal(t, want, targetKey(tgt, nil))
		require.Empty(t, tgt.Labels(labels.NewBuilder(labels.EmptyLabels())).Get(KeyLabel), "the key is not a series label")
	}
}

// TestFenceJudgesTheCarriedKey checks that the fence judges a scrape by the
// key on the target, and computes it when relabeling dropped the label.
func TestFenceJudgesTheCarriedKey(t *testing.T) {
	k := newKeyer()
	url := "http://h1:80/metrics"
	computed := k.sum("a", url)
	for _, tc := range []struct {
		name  string
		label string // KeyLabel's value, empty for none
		owned uint64
		want  bool
	}{
		{"carried key owned", string(formatKey(7)), 7, true},
		{"carried key not owned", string(formatKey(7)), computed, false},
		{"no label: computed", "", computed, true},
		{"malformed label: computed", "xyz", computed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lset := map[string]string{
				model.AddressLabel: "h1:80", model.SchemeLabel: "http", model.MetricsPathLabel: "/metrics", model.JobLabel: "a",
			}
			if tc.label != "" {
				lset[KeyLabel] = tc.label
			}
			tgt := promscrape.NewTarget(labels.FromMap(lset), &config.ScrapeConfig{}, nil, nil)
			owner := &fakeOwner{ready: true, owns: func(key uint64) bool { return key == tc.owned }}
			fence, err := newFence(owner, nopAppendable{}, "", nil)
			require.NoError(t, err)
			app := fence.AppenderV2(promscrape.ContextWithTarget(context.Background(), tgt))
			_, err = app.Append(0, labels.FromStrings("__name__", "up"), 0, time.Now().UnixMilli(), 1, nil, nil, storage.AOptions{})
			require.NoError(t, err)
			require.NoError(t, app.Commit())
			require.Equal(t, tc.want, testutil.ToFloat64(fence.kept) == 1)
		})
	}
}

package delivery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// benchTargets are scrape loops as the side-by-side benchmark runs them
// (internal/bench: 100 targets of 1000 series, one external label): each
// keeps its series' labels and refs, as Prometheus' scrape cache does.
type benchTargets struct {
	ls   [][]labels.Labels
	refs [][]storage.SeriesRef
}

func newBenchTargets(targets, series int) *benchTargets {
	bt := &benchTargets{ls: make([][]labels.Labels, targets), refs: make([][]storage.SeriesRef, targets)}
	for t := range targets {
		bt.ls[t] = make([]labels.Labels, series)
		bt.refs[t] = make([]storage.SeriesRef, series)
		for i := range series {
			bt.ls[t][i] = labels.FromStrings("__name__", "farm_series", "instance", "127.0.0.1:"+strconv.Itoa(40000+t),
				"job", "farm", "series", strconv.Itoa(i), "target", "target-"+strconv.Itoa(t))
		}
	}
	return bt
}

// scrape appends one commit per target at ts.
func (bt *benchTargets) scrape(tb testing.TB, s *Storage, ts int64) {
	for t := range bt.ls {
		app := s.AppenderV2(context.Background())
		for i, ls := range bt.ls[t] {
			ref, err := app.Append(bt.refs[t][i], ls, 0, ts, float64(i), nil, nil, storage.AOptions{})
			if err != nil {
				tb.Fatal(err)
			}
			bt.refs[t][i] = ref
		}
		if err := app.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchConfig(tb testing.TB, url, extra string) *config.Config {
	cfg, err := config.Load(fmt.Sprintf(`
global:
  external_labels: {run: shoal-1}
remote_write:
  - url: %s
%s`, url, extra), nil)
	require.NoError(tb, err)
	return cfg
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSeriesCache reports the heap the storage keeps per series
// beyond the caller's own labels, and the cost of a sample once its series
// is known, for an endpoint without and with write relabeling.
func BenchmarkSeriesCache(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	for _, tc := range []struct{ name, extra string }{
		{"external_labels", ""},
		{"write_relabel", "    write_relabel_configs:\n      - {source_labels: [__name__], regex: dropped, action: drop}\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const targets, series = 100, 1000
			bt := newBenchTargets(targets, series)
			before := heapInUse()
			s, err := Open(nil, nil, Options{Dir: b.TempDir()})
			require.NoError(b, err)
			require.NoError(b, s.ApplyConfig(benchConfig(b, srv.URL, tc.extra)))
			ts := int64(1000)
			bt.scrape(b, s, ts)
			perSeries := float64(heapInUse()-before) / (targets * series)
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				ts += 1000
				bt.scrape(b, s, ts)
			}
			b.StopTimer()
			b.ReportMetric(perSeries, "heap-B/series")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*targets*series), "cpu-ns/sample")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*targets*series), "ns/sample")
			b.ReportMetric(0, "ns/op")
			require.NoError(b, s.Close(time.Second))
			runtime.KeepAlive(bt)
		})
	}
}

// BenchmarkAppend is the cost of a sample of a known series in Append, the
// part of a commit the series cache and the label encoding take (commits
// are rolled back: no compression, no disk), over the benchmark's 100,000
// series so that the cache's maps do not fit in the CPU's caches either.
func BenchmarkAppend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	s, err := Open(nil, nil, Options{Dir: b.TempDir()})
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close(time.Second)) }()
	require.NoError(b, s.ApplyConfig(benchConfig(b, srv.URL, "")))
	const targets, series = 100, 1000
	bt := newBenchTargets(targets, series)
	bt.scrape(b, s, 1000)
	b.ResetTimer()
	cpu0 := cpuTime()
	for n := range b.N {
		t := n % targets
		app := s.AppenderV2(context.Background())
		for i, ls := range bt.ls[t] {
			if _, err := app.Append(bt.refs[t][i], ls, 0, 2000, float64(i), nil, nil, storage.AOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		require.NoError(b, app.Rollback())
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*series), "cpu-ns/sample")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*series), "ns/sample")
}

// cpuTime is the process's user and system CPU time in nanoseconds: on a
// shared machine it measures a benchmark where wall time does not.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkEncodeLabels is the per-sample encoding of a benchmark series,
// with and without an external label.
func BenchmarkEncodeLabels(b *testing.B) {
	ls := labels.FromStrings("__name__", "farm_series", "instance", "127.0.0.1:40001", "job", "farm", "series", "123", "target", "target-12")
	buf := make([]byte, 0, 256)
	for _, tc := range []struct {
		name string
		ext  []labels.Label
	}{{"external_label", []labels.Label{{Name: "run", Value: "shoal-1"}}}, {"none", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			c := cpuTime()
			for range b.N {
				buf = encodeLabelsExt(buf[:0], ls, tc.ext)
			}
			b.ReportMetric(float64(cpuTime()-c)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkDeliver is the whole delivery path of a sample, as the 100k
// benchmark runs it (100 targets of 1,000 series, one external label):
// Append, Commit (compression, the queue file), and the sender (the
// request, the savepoint, the HTTP request) to a receiver that reads the
// body and answers 204; the process' CPU per sample, so that two versions
// run side by side compare on a shared machine. Each op is one scrape of
// every target; the sender has delivered everything when it ends.
//
//	go test -run '^$' -bench Deliver -benchtime 20x ./delivery/
func BenchmarkDeliver(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Add(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, err := Open(nil, nil, Options{Dir: b.TempDir()})
	require.NoError(b, err)
	require.NoError(b, s.ApplyConfig(benchConfig(b, srv.URL, "")))
	const targets, series = 100, 1000
	bt := newBenchTargets(targets, series)
	b.ResetTimer()
	cpu0 := cpuTime()
	ts := int64(1000)
	for b.Loop() {
		ts += 5000
		bt.scrape(b, s, ts)
	}
	require.NoError(b, s.Close(time.Minute))
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*targets*series), "cpu-ns/sample")
	b.ReportMetric(float64(got.Load())/float64(b.N*targets*series), "wire-B/sample")
	b.ReportMetric(0, "ns/op")
}

package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/scrape"
)

// poisonBody is a text exposition of n series of about 77 bytes each, the
// line size of the 100 MB, 1.3 M series response of issue 10.
func poisonBody(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 80)
	b.WriteString("# HELP poison_requests_total A target that exposes too much.\n# TYPE poison_requests_total counter\n")
	for i := range n {
		fmt.Fprintf(&b, "poison_requests_total{pod=\"pod-%08d\",namespace=\"ns-%03d\",code=\"200\"} %d\n", i, i%1000, i)
	}
	return b.Bytes()
}

// poisonTarget serves body as /metrics; t.Cleanup stops it.
func poisonTarget(t testing.TB, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// memPeak samples the Go heap's live objects every millisecond until
// stopped, and resets the kernel's peak RSS (VmHWM) when it starts, so
// that it measures one scrape's peak in a process that did other work
// before.
type memPeak struct {
	stop     chan struct{}
	done     chan struct{}
	baseHeap uint64
	baseRSS  uint64
	peakHeap uint64
	rssOK    bool
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// procStatus returns a /proc/self/status field in bytes (VmRSS, VmHWM).
func procStatus(field string) (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func startMemPeak() *memPeak {
	runtime.GC()
	debug.FreeOSMemory()
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{}), baseHeap: heapObjects()}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
	if os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil {
		m.baseRSS, m.rssOK = procStatus("VmRSS")
	}
	m.peakHeap = m.baseHeap
	go func() {
		defer close(m.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				m.peakHeap = max(m.peakHeap, heapObjects())
			}
		}
	}()
	return m
}

// result stops sampling and returns the peaks above the baseline, in MiB;
// rss is -1 where /proc cannot tell.
func (m *memPeak) result() (heap, rss float64) {
	close(m.stop)
	<-m.done
	heap = float64(m.peakHeap-m.baseHeap) / (1 << 20)
	rss = -1
	if hwm, ok := procStatus("VmHWM"); ok && m.rssOK {
		rss = float64(hwm-m.baseRSS) / (1 << 20)
	}
	return heap, rss
}

// poisonResult is what one agent paid for its first scrape of the target.
type poisonResult struct {
	health, lastError string
	// peakHeap, peakRSS: above the baseline during the scrape, in MiB.
	peakHeap, peakRSS float64
	// retainedHeap is the heap the scrape left behind (scrape cache, WAL
	// series, buffers), after a GC, in MiB.
	retainedHeap float64
	// page is the status page after the scrape.
	page string
	// exceeded are Prometheus' counters of scrapes refused by a limit.
	exceededBody, exceededSamples float64
}

var poisonMu sync.Mutex // one measurement at a time in this process

// scrapePoison runs one agent with limits against a target serving body,
// until its first scrape of the target has been reported, and measures it.
func scrapePoison(t testing.TB, target string, limits scrape.Limits, interval time.Duration) poisonResult {
	t.Helper()
	poisonMu.Lock()
	defer poisonMu.Unlock()
	cfg := fmt.Sprintf("global: {scrape_interval: %s, scrape_timeout: %s}\nscrape_configs: [{job_name: poison, static_configs: [{targets: [%q]}]}]\n",
		interval, interval*4/5, target)
	opts := agentOptions(t, "poisoned", writeConfig(t, cfg))
	opts.Scrape.DefaultLimits = limits

	mem := startMemPeak()
	a := startAgent(t, opts)
	var tg Targets
	require.Eventually(t, func() bool {
		if err := a.getJSON("/api/v1/targets", &tg); err != nil || len(tg.ActiveTargets) != 1 {
			return false
		}
		return tg.ActiveTargets[0].Health != "unknown"
	}, 3*interval+2*time.Minute, 20*time.Millisecond, "the first scrape was not reported")
	res := poisonResult{health: string(tg.ActiveTargets[0].Health), lastError: tg.ActiveTargets[0].LastError}
	// The WAL and the scrape cache settle after the report; a GC frees
	// memory but never raises the peaks.
	time.Sleep(time.Second)
	runtime.GC()
	res.retainedHeap = float64(heapObjects()-mem.baseHeap) / (1 << 20)
	res.peakHeap, res.peakRSS = mem.result()
	_, res.page = a.get("/")
	res.exceededBody = a.metric("prometheus_target_scrapes_exceeded_body_size_limit_total")
	res.exceededSamples = a.metric("prometheus_target_scrapes_exceeded_sample_limit_total")
	require.NoError(t, a.stop())
	return res
}

func (r poisonResult) String() string {
	return fmt.Sprintf("health=%s err=%q peak_heap=%.0fMiB peak_rss=%.0fMiB retained_heap=%.0fMiB",
		r.health, r.lastError, r.peakHeap, r.peakRSS, r.retainedHeap)
}

// TestPoisonTarget scrapes a target too large for its limits through the
// whole agent (config defaults, the filter, the fence, the agent WAL): with
// a default limit the scrape fails (down, the limit's error in
// /api/v1/targets and Prometheus' counter) for a fraction of the memory the
// same scrape costs without one. Sizes are scaled down from issue 10's
// 100 MB target to keep -race fast; BenchmarkPoisonTarget runs that one
// against the shipped defaults.
func TestPoisonTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("scrapes a 10 MB target three times")
	}
	const series = 120_000 // ~10 MB
	target := poisonTarget(t, poisonBody(series))
	// A scrape timeout (4/5 of it) that -race on a loaded machine meets.
	const interval = 10 * time.Second

	none := scrapePoison(t, target, scrape.Limits{}, interval)
	t.Logf("no limit:     %s", none)
	require.Equal(t, "up", none.health, none.lastError)
	require.NotContains(t, none.page, "scrape-error\">")

	for _, tc := range []struct {
		name    string
		limits  scrape.Limits
		err     string
		counter func(poisonResult) float64
	}{
		{"body size", scrape.Limits{BodySize: 2 * units.MiB}, "body size limit exceeded", func(r poisonResult) float64 { return r.exceededBody }},
		{"samples", scrape.Limits{Samples: series / 10}, "sample limit exceeded", func(r poisonResult) float64 { return r.exceededSamples }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := scrapePoison(t, target, tc.limits, interval)
			t.Logf("%s limit: %s; ratios to no limit: peak rss %.3f, peak heap %.3f, retained heap %.3f",
				tc.name, r, r.peakRSS/none.peakRSS, r.peakHeap/none.peakHeap, r.retainedHeap/none.retainedHeap)
			require.Equal(t, "down", r.health)
			require.Equal(t, tc.err, r.lastError)
			require.GreaterOrEqual(t, tc.counter(r), 1.0)
			require.Contains(t, r.page, `<div class="scrape-error">`+tc.err+`</div>`, "the status page shows the error")
			// The peak heap counts garbage not yet collected, which a
			// sample limit does not save (the whole body is still parsed):
			// the peak RSS is the figure that kills a container. With
			// delivery keeping ~90 bytes per series, that same garbage is
			// most of an unlimited scrape's peak (refused/unlimited measured
			// 0.51-0.58 under -race alone, 0.79 with other packages'
			// tests running: the collector runs late on a loaded machine),
			// so the bound is nine tenths; the retained heap below is what
			// the limit saves, and BenchmarkPoisonTarget carries the figure.
			if r.peakRSS >= 0 && none.peakRSS >= 0 {
				require.Less(t, r.peakRSS, none.peakRSS*9/10, "a refused scrape must cost less than an unlimited one")
			} else {
				require.Less(t, r.peakHeap, none.peakHeap)
			}
			require.Less(t, r.retainedHeap, none.retainedHeap/2)
		})
	}
}

// BenchmarkPoisonTarget measures issue 10's target (100 MB, 1.3 M series;
// POISON_SERIES overrides the size) scraped once by an agent with the
// shipped default limits and once without: peak heap, peak RSS and retained
// heap in MiB, and their ratios. Run it alone, without -race:
//
//	go test -run '^$' -bench PoisonTarget -benchtime 1x ./agent/
func BenchmarkPoisonTarget(b *testing.B) {
	series := 1_300_000
	if s, err := strconv.Atoi(os.Getenv("POISON_SERIES")); err == nil {
		series = s
	}
	body := poisonBody(series)
	target := poisonTarget(b, body)
	defaults := scrape.DefaultConfig().DefaultLimits
	var def, none poisonResult
	for b.Loop() {
		def = scrapePoison(b, target, defaults, 15*time.Second)
		none = scrapePoison(b, target, scrape.Limits{}, 15*time.Second)
	}
	b.Logf("body %d MB, %d series; defaults %s / %d", len(body)>>20, series, defaults.BodySize, defaults.Samples)
	b.Logf("default limits: %s", def)
	b.Logf("no limit:       %s", none)
	b.ReportMetric(def.peakHeap, "default-peak-heap-MiB")
	b.ReportMetric(none.peakHeap, "none-peak-heap-MiB")
	b.ReportMetric(def.peakRSS, "default-peak-rss-MiB")
	b.ReportMetric(none.peakRSS, "none-peak-rss-MiB")
	b.ReportMetric(def.retainedHeap, "default-retained-heap-MiB")
	b.ReportMetric(none.retainedHeap, "none-retained-heap-MiB")
	b.ReportMetric(def.peakHeap/none.peakHeap, "peak-heap-ratio")
	b.ReportMetric(def.peakRSS/none.peakRSS, "peak-rss-ratio")
	b.ReportMetric(float64(none.peakRSS)*(1<<20)/float64(len(body)), "none-rss-B/body-B")
	b.ReportMetric(float64(none.retainedHeap)*(1<<20)/float64(series), "none-retained-B/series")
}

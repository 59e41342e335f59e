package farm

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startFarm starts a farm that t.Cleanup closes.
func startFarm(t *testing.T, cfg Config) *Farm {
	t.Helper()
	f, err := Start(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

// httpClient returns a client whose keep-alive connections are closed at the
// end of the test, so goleak sees no leftover transport goroutines.
func httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

// scrape fetches and parses a target's /metrics.
func scrape(t *testing.T, c *http.Client, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, hdr := get(t, c, "http://"+addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, contentType, hdr.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, "body:\n%s", body)
	return mfs
}

func counterValue(t *testing.T, mfs map[string]*dto.MetricFamily) uint64 {
	t.Helper()
	mf := mfs["farm_scrapes_total"]
	require.NotNil(t, mf)
	require.Equal(t, dto.MetricType_COUNTER, mf.GetType())
	require.Len(t, mf.GetMetric(), 1)
	return uint64(mf.GetMetric()[0].GetCounter().GetValue())
}

func TestMetricsContent(t *testing.T) {
	f := startFarm(t, Config{Targets: 2, Series: 5})
	c := httpClient(t)

	for _, tg := range f.Targets() {
		mfs := scrape(t, c, tg.Addr)
		require.Len(t, mfs, 3)
		require.Equal(t, uint64(1), counterValue(t, mfs))

		series := mfs["farm_series"].GetMetric()
		require.Len(t, series, 5)
		for i, m := range series {
			require.Equal(t, "series", m.GetLabel()[0].GetName())
			require.Equal(t, strconv.Itoa(i), m.GetLabel()[0].GetValue())
			require.Equal(t, float64(i), m.GetGauge().GetValue())
		}

		info := mfs["farm_target_info"].GetMetric()
		require.Len(t, info, 1)
		require.Equal(t, tg.ID, info[0].GetLabel()[0].GetValue())
		require.Equal(t, 1.0, info[0].GetGauge().GetValue())
	}
}

func TestUnequalSizes(t *testing.T) {
	f := startFarm(t, Config{Targets: 3, Series: 99, Sizes: []int{7, 2}})
	c := httpClient(t)
	for i, want := range []int{7, 2, 7} {
		mfs := scrape(t, c, f.Targets()[i].Addr)
		require.Len(t, mfs["farm_series"].GetMetric(), want, "target %d", i)
	}
}

func TestNoSeries(t *testing.T) {
	f := startFarm(t, Config{Targets: 1})
	mfs := scrape(t, httpClient(t), f.Targets()[0].Addr)
	require.NotContains(t, mfs, "farm_series")
	require.Contains(t, mfs, "farm_target_info")
}

func TestCounterRisesByOnePerScrape(t *testing.T) {
	f := startFarm(t, Config{Targets: 3, Series: 1})
	c := httpClient(t)
	targets := f.Targets()

	// Scrapes of one target do not move another's counter.
	for i := 1; i <= 5; i++ {
		for _, tg := range targets[:2] {
			require.Equal(t, uint64(i), counterValue(t, scrape(t, c, tg.Addr)))
		}
	}
	require.Equal(t, uint64(5), f.Scrapes(targets[0].ID))
	require.Equal(t, uint64(5), f.Scrapes(targets[1].ID))
	require.Zero(t, f.Scrapes(targets[2].ID))
	require.Zero(t, f.Scrapes("no-such-target"))

	// Neither /health nor HEAD is a scrape.
	code, _, _ := get(t, c, "http://"+targets[0].Addr+"/health")
	require.Equal(t, http.StatusOK, code)
	resp, err := c.Head("http://" + targets[0].Addr + "/metrics")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, uint64(5), f.Scrapes(targets[0].ID))
	require.Equal(t, uint64(6), counterValue(t, scrape(t, c, targets[0].Addr)))
}

func TestConcurrentScrapesGetDistinctValues(t *testing.T) {
	const workers, perWorker = 8, 50
	f := startFarm(t, Config{Targets: 1, Series: 3})
	addr := f.Targets()[0].Addr
	c := httpClient(t)

	var (
		mu   sync.Mutex
		seen = map[uint64]int{}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				resp, err := c.Get("http://" + addr + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				p := expfmt.NewTextParser(model.UTF8Validation)
				mfs, err := p.TextToMetricFamilies(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Error(err)
					return
				}
				v := uint64(mfs["farm_scrapes_total"].GetMetric()[0].GetCounter().GetValue())
				mu.Lock()
				seen[v]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	require.Len(t, seen, workers*perWorker)
	for v := uint64(1); v <= workers*perWorker; v++ {
		require.Equal(t, 1, seen[v], "value %d", v)
	}
	require.Equal(t, uint64(workers*perWorker), f.Scrapes(f.Targets()[0].ID))
}

func TestHealth(t *testing.T) {
	f := startFarm(t, Config{Targets: 4, Unhealthy: 2})
	c := httpClient(t)
	targets := f.Targets()

	wantHealthy := []bool{true, true, false, false}
	for i, tg := range targets {
		require.Equal(t, fmt.Sprintf("target-%d", i), tg.ID)
		require.Equal(t, wantHealthy[i], tg.Healthy, tg.ID)
		code, _, _ := get(t, c, "http://"+tg.Addr+"/health")
		if wantHealthy[i] {
			require.Equal(t, http.StatusOK, code)
		} else {
			require.Equal(t, http.StatusInternalServerError, code)
		}
		// Unhealthy targets still serve metrics.
		require.Equal(t, uint64(1), counterValue(t, scrape(t, c, tg.Addr)))
	}

	require.NoError(t, f.SetHealthy("target-0", false))
	require.NoError(t, f.SetHealthy("target-3", true))
	require.Error(t, f.SetHealthy("target-9", true))
	code, _, _ := get(t, c, "http://"+targets[0].Addr+"/health")
	require.Equal(t, http.StatusInternalServerError, code)
	code, _, _ = get(t, c, "http://"+targets[3].Addr+"/health")
	require.Equal(t, http.StatusOK, code)
	require.False(t, f.Targets()[0].Healthy)
	require.True(t, f.Targets()[3].Healthy)
}

func TestBasePort(t *testing.T) {
	// Find two consecutive free ports; retry a few times since another
	// process may hold the neighbour.
	var base int
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		require.NoError(t, l.Close())
		if err == nil {
			require.NoError(t, l2.Close())
			base = p
			break
		}
	}
	require.NotZero(t, base, "no two consecutive free ports")

	f := startFarm(t, Config{Targets: 2, BasePort: base})
	targets := f.Targets()
	require.Equal(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(base)), targets[0].Addr)
	require.Equal(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(base+1)), targets[1].Addr)

	// A second farm on the same ports fails and leaves nothing listening.
	_, err := Start(t.Context(), Config{Targets: 2, BasePort: base})
	require.ErrorContains(t, err, "listen for target 0")
}

func TestStartReleasesPortsOnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	// Target 0 gets busy-1, target 1 collides with busy.
	_, err = Start(t.Context(), Config{Targets: 2, BasePort: busy - 1})
	require.Error(t, err)
	if strings.Contains(err.Error(), "listen for target 0") {
		t.Skipf("port %d was taken by another process: %v", busy-1, err)
	}
	require.ErrorContains(t, err, "listen for target 1")
	l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy-1)))
	require.NoError(t, err, "port of target 0 still held after a failed start")
	require.NoError(t, l2.Close())
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"ok", Config{Targets: 30, Series: 10, Unhealthy: 2}, ""},
		{"all unhealthy", Config{Targets: 2, Unhealthy: 2}, ""},
		{"base port at the top", Config{Targets: 2, BasePort: 65534}, ""},
		{"no targets", Config{}, "targets must be at least 1, got 0"},
		{"negative series", Config{Targets: 1, Series: -1}, "series must not be negative, got -1"},
		{"negative size", Config{Targets: 1, Sizes: []int{3, -1}}, "sizes must not be negative, got [3 -1]"},
		{"too many unhealthy", Config{Targets: 2, Unhealthy: 3}, "unhealthy must be between 0 and targets (2), got 3"},
		{"negative unhealthy", Config{Targets: 2, Unhealthy: -1}, "unhealthy must be between 0 and targets (2), got -1"},
		{"ports overflow", Config{Targets: 3, BasePort: 65534}, "base port must be 0 or leave room for 3 targets below 65536, got 65534"},
		{"negative port", Config{Targets: 1, BasePort: -1}, "base port must be 0 or leave room for 1 targets below 65536, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
			_, err = Start(t.Context(), tc.cfg)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	f, err := Start(t.Context(), Config{Targets: 2})
	require.NoError(t, err)
	addr := f.Targets()[0].Addr
	require.NoError(t, f.Close())
	require.NoError(t, f.Close())
	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "target still listening after Close")
}

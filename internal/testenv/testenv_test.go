package testenv

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := Port()
		require.NoError(t, err)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", Loopback(p))
		require.NoError(t, err)
		require.NoError(t, l.Close())
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	require.FileExists(t, filepath.Join(root, "hack", "build-deps.sh"))
}

func TestFind(t *testing.T) {
	b := Binary{Name: "shoal-testenv-no-such-binary", Env: "SHOAL_TESTENV_NO_SUCH_BIN"}

	t.Run("missing", func(t *testing.T) {
		_, err := b.Find()
		require.ErrorIs(t, err, ErrNoBinary)
		require.ErrorContains(t, err, "hack/build-deps.sh "+b.Name)
	})
	t.Run("env var wins", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), b.Name)
		require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
		t.Setenv(b.Env, bin)
		path, err := b.Find()
		require.NoError(t, err)
		require.Equal(t, bin, path)
	})
	t.Run("env var pointing nowhere", func(t *testing.T) {
		t.Setenv(b.Env, filepath.Join(t.TempDir(), "nothing"))
		_, err := b.Find()
		require.ErrorContains(t, err, "$"+b.Env)
		require.NotErrorIs(t, err, ErrNoBinary, "a wrong setting is not a reason to skip")
	})
	t.Run("PATH", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, b.Name), []byte("#!/bin/sh\n"), 0o755))
		t.Setenv("PATH", dir)
		path, err := b.Find()
		require.NoError(t, err)
		require.Equal(t, filepath.Join(dir, b.Name), path)
	})
}

func TestGroupClose(t *testing.T) {
	g := NewGroup(t.TempDir())
	var order []int
	g.OnClose(func() error { order = append(order, 1); return nil })
	g.OnClose(func() error { order = append(order, 2); return errors.New("boom") })
	d, err := g.Dir("a b")
	require.NoError(t, err)
	require.DirExists(t, d)
	require.EqualError(t, g.Close(), "boom")
	require.Equal(t, []int{2, 1}, order, "stops run last first")
	require.NoError(t, g.Close(), "a second Close does nothing")
}

func TestProcessPidNotRunning(t *testing.T) {
	p := NewProcess("none", "/bin/true", "")
	require.Zero(t, p.Pid())
}

func TestConsul(t *testing.T) {
	t.Parallel()
	SkipWithout(t, ConsulBinary)
	c, err := RunConsul(t.Context(), ForTest(t), ConsulOptions{})
	require.NoError(t, err)
	client := c.Client()

	leader, err := client.Status().Leader()
	require.NoError(t, err)
	require.NotEmpty(t, leader)

	require.NoError(t, client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8080,
		Check: &api.AgentServiceCheck{TTL: "1m", Status: api.HealthPassing},
	}))
	waitForService := func() {
		require.Eventually(t, func() bool {
			// Any state: a TTL check may restart critical.
			entries, _, err := client.Health().Service("web", "", false, nil)
			return err == nil && len(entries) == 1 && entries[0].Service.Port == 8080
		}, 30*time.Second, 50*time.Millisecond)
	}
	waitForService()

	// Down: the API is gone.
	require.NoError(t, c.Stop())
	_, err = client.Status().Leader()
	require.Error(t, err)
	require.NoError(t, c.Stop()) // no-op

	// Back on the same address; the agent restores its services from its
	// data directory and syncs them into the new catalog.
	require.NoError(t, c.Start())
	waitForService()
}

func TestReceiver(t *testing.T) {
	t.Parallel()
	SkipWithout(t, PrometheusBinary)
	ctx := t.Context()
	r, err := RunReceiver(ctx, ForTest(t), ReceiverOptions{})
	require.NoError(t, err)
	now := time.Now()

	// Nothing is scraped, so there is no `up`.
	got, err := r.Query(ctx, "up", now)
	require.NoError(t, err)
	require.Empty(t, got)

	// Write a series with a gap at t0+2s, then read back the raw samples.
	t0 := now.Add(-time.Minute).Truncate(time.Second)
	var samples []prompb.Sample
	for i, v := range []float64{1, 2, 4, 5} {
		offset := time.Duration(i) * time.Second
		if v > 2 {
			offset += time.Second
		}
		samples = append(samples, prompb.Sample{Value: v, Timestamp: t0.Add(offset).UnixMilli()})
	}
	remoteWrite(t, r.RemoteWriteURL, prompb.TimeSeries{
		Labels: []prompb.Label{
			{Name: "__name__", Value: "farm_scrapes_total"},
			{Name: "instance", Value: "a"},
		},
		Samples: samples,
	})

	want := []Series{{
		Labels: map[string]string{"__name__": "farm_scrapes_total", "instance": "a"},
		Points: []Point{
			{T: t0, V: 1},
			{T: t0.Add(time.Second), V: 2},
			{T: t0.Add(3 * time.Second), V: 4},
			{T: t0.Add(4 * time.Second), V: 5},
		},
	}}
	requireRaw := func() {
		t.Helper()
		got, err := r.RawSamples(ctx, `farm_scrapes_total{instance="a"}`, t0.Add(-time.Millisecond), now)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, want[0].Labels, got[0].Labels)
		require.Len(t, got[0].Points, len(want[0].Points))
		for i, p := range got[0].Points {
			require.True(t, want[0].Points[i].T.Equal(p.T), "point %d at %v, want %v", i, p.T, want[0].Points[i].T)
			require.Equal(t, want[0].Points[i].V, p.V)
		}
	}
	requireRaw()

	// The start of the window is exclusive.
	got2, err := r.RawSamples(ctx, "farm_scrapes_total", t0, now)
	require.NoError(t, err)
	require.Len(t, got2[0].Points, 3)

	inst, err := r.Query(ctx, "farm_scrapes_total", now)
	require.NoError(t, err)
	require.Len(t, inst, 1)
	require.Equal(t, 5.0, inst[0].V)

	sc, err := r.Query(ctx, "scalar(farm_scrapes_total)", now)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	require.Empty(t, sc[0].Labels)
	require.Equal(t, 5.0, sc[0].V)
	require.WithinDuration(t, now, sc[0].T, time.Millisecond)

	rng, err := r.QueryRange(ctx, "farm_scrapes_total", t0, t0.Add(4*time.Second), 2*time.Second)
	require.NoError(t, err)
	require.Len(t, rng, 1)
	require.Len(t, rng[0].Points, 3)

	_, err = r.Query(ctx, "farm_scrapes_total[1m]", now)
	require.ErrorContains(t, err, "want a vector or scalar")

	// Staleness markers are hidden from PromQL and read raw: none in the
	// series above, one after it is written.
	stale, err := r.StaleMarkers(ctx, t0, now, labels.MustNewMatcher(labels.MatchEqual, "__name__", "farm_scrapes_total"))
	require.NoError(t, err)
	require.Empty(t, stale)
	staleAt := t0.Add(5 * time.Second)
	remoteWrite(t, r.RemoteWriteURL, prompb.TimeSeries{
		Labels: []prompb.Label{
			{Name: "__name__", Value: "farm_scrapes_total"},
			{Name: "instance", Value: "a"},
		},
		Samples: []prompb.Sample{{Value: math.Float64frombits(value.StaleNaN), Timestamp: staleAt.UnixMilli()}},
	})
	stale, err = r.StaleMarkers(ctx, t0, now, labels.MustNewMatcher(labels.MatchEqual, "instance", "a"))
	require.NoError(t, err)
	require.Len(t, stale, 1)
	require.Equal(t, want[0].Labels, stale[0].Labels)
	require.Len(t, stale[0].Points, 1)
	require.True(t, staleAt.Equal(stale[0].Points[0].T), "marker at %v, want %v", stale[0].Points[0].T, staleAt)
	requireRaw()

	// Down: the API is gone. Back up: the samples are replayed from the WAL.
	require.NoError(t, r.Stop())
	_, err = r.Query(ctx, "up", now)
	require.Error(t, err)
	require.NoError(t, r.Start())
	requireRaw()
}

// remoteWrite sends series to a remote-write 1.0 endpoint.
func remoteWrite(t *testing.T, url string, series ...prompb.TimeSeries) {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")

	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(hreq)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "remote write to %s", url)
}

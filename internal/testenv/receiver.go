package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// ReceiverOptions configures StartReceiver. The zero value is the default
// setup: out-of-order samples are rejected, as they are by a stock Prometheus.
type ReceiverOptions struct {
	// OutOfOrderTimeWindow is storage.tsdb.out_of_order_time_window. Zero
	// rejects every out-of-order sample, which is what tests that count
	// duplicates and gaps want.
	OutOfOrderTimeWindow time.Duration
	// ExtraArgs are appended to the command line, e.g.
	// "--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request".
	ExtraArgs []string
}

// Receiver is a Prometheus server that scrapes nothing and accepts remote
// write. Query it through Query, QueryRange, RawSamples or API.
type Receiver struct {
	// URL is the base URL of the server, e.g. "http://127.0.0.1:41234".
	URL string
	// RemoteWriteURL is the remote-write endpoint, URL + "/api/v1/write".
	RemoteWriteURL string
	// DataDir is the TSDB directory, kept across Stop and Start.
	DataDir string
	// LogPath is the file the server logs to; it is printed when the test fails.
	LogPath string

	tb        testing.TB
	proc      *process
	api       v1.API
	transport *http.Transport
}

// StartReceiver starts Prometheus as a remote-write receiver on a free
// loopback port and waits until /-/ready answers 200. t.Cleanup stops it. It
// skips the test under -short or when the binary is missing; see the package
// documentation.
func StartReceiver(tb testing.TB, opts ReceiverOptions) *Receiver {
	tb.Helper()
	bin := findBinary(tb, "prometheus", EnvPrometheusBin)

	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	// No scrape configs: everything in the TSDB arrived by remote write.
	cfg := fmt.Sprintf("storage:\n  tsdb:\n    out_of_order_time_window: %s\n",
		opts.OutOfOrderTimeWindow.String())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatalf("testenv: write prometheus config: %v", err)
	}

	addr := loopback(FreePort(tb))
	r := &Receiver{
		URL:            "http://" + addr,
		RemoteWriteURL: "http://" + addr + "/api/v1/write",
		DataDir:        filepath.Join(dir, "data"),
		LogPath:        filepath.Join(dir, "prometheus.log"),
		tb:             tb,
		transport:      http.DefaultTransport.(*http.Transport).Clone(),
	}
	client, err := promapi.NewClient(promapi.Config{Address: r.URL, RoundTripper: r.transport})
	if err != nil {
		tb.Fatalf("testenv: create prometheus api client: %v", err)
	}
	r.api = v1.NewAPI(client)
	tb.Cleanup(r.transport.CloseIdleConnections)

	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + r.DataDir,
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
		"--log.level=info",
	}
	r.proc = newProcess(tb, "prometheus", bin, r.LogPath, append(args, opts.ExtraArgs...)...)
	r.Start()
	return r
}

// Start starts the server again after Stop, on the same port and data
// directory, and waits until it is ready. Call it from the test goroutine.
func (r *Receiver) Start() {
	r.tb.Helper()
	if err := r.proc.start(); err != nil {
		r.tb.Fatalf("testenv: %v", err)
	}
	hc := &http.Client{Transport: r.transport, Timeout: readyRequestTimeout}
	r.proc.waitReady(r.tb, startTimeout, func() error {
		resp, err := hc.Get(r.URL + "/-/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		return nil
	})
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period) to
// simulate the receiver being down. Stopping a stopped server does nothing.
func (r *Receiver) Stop() {
	r.tb.Helper()
	if err := r.proc.stop(); err != nil {
		r.tb.Fatalf("testenv: stop prometheus: %v", err)
	}
	r.transport.CloseIdleConnections()
}

// API returns a client for the server's whole HTTP API. It is safe for
// concurrent use.
func (r *Receiver) API() v1.API { return r.api }

// Sample is one value of an instant-query result. For a native histogram, V
// is its count.
type Sample struct {
	Labels map[string]string
	T      time.Time
	V      float64
}

// Point is one sample of a series. For a native histogram, V is its count.
type Point struct {
	T time.Time
	V float64
}

// Series is a series with its samples in time order.
type Series struct {
	Labels map[string]string
	Points []Point
}

// String formats the labels as {a="b", ...}, sorted by name.
func (s Series) String() string { return labelString(s.Labels) }

// Query evaluates an instant query at the given time. A scalar result comes
// back as one sample without labels; a range-vector result is an error (use
// RawSamples). Warnings are dropped.
func (r *Receiver) Query(ctx context.Context, query string, at time.Time) ([]Sample, error) {
	val, _, err := r.api.Query(ctx, query, at)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	return toSamples(query, val)
}

// QueryRange evaluates a range query. The points are evaluations on the step
// grid, not raw samples: a missing scrape is hidden by the lookback window.
// Use RawSamples to count gaps and duplicates. Warnings are dropped.
func (r *Receiver) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	val, _, err := r.api.QueryRange(ctx, query, v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, fmt.Errorf("query range %q: %w", query, err)
	}
	return toSeries(query, val)
}

// RawSamples returns every stored sample of the series that selector (a
// vector selector such as `farm_scrapes_total{job="farm"}`) matches, with
// timestamps in (start, end], both truncated to milliseconds. It evaluates `selector[end-start]` at end, which
// returns the samples as written, so tests can count gaps and duplicates
// exactly. Start is exclusive because PromQL range selectors are left-open.
// Series are sorted by labels.
func (r *Receiver) RawSamples(ctx context.Context, selector string, start, end time.Time) ([]Series, error) {
	// Work in whole milliseconds, the TSDB's resolution, so the window
	// starts exactly at start whatever the sub-millisecond parts are.
	startMs, endMs := start.UnixMilli(), end.UnixMilli()
	if endMs <= startMs {
		return nil, fmt.Errorf("raw samples of %s: end %v is not after start %v", selector, end, start)
	}
	q := fmt.Sprintf("%s[%dms]", strings.TrimSpace(selector), endMs-startMs)
	val, _, err := r.api.Query(ctx, q, time.UnixMilli(endMs))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	return toSeries(q, val)
}

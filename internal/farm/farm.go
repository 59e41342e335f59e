// Package farm runs synthetic scrape targets: many /metrics endpoints in one
// process, each on its own loopback port, for tests, benchmarks and demos.
//
// Every target counts its scrapes in farm_scrapes_total, which rises by
// exactly 1 per scrape, so every scrape serves a distinct value. In the raw
// samples at a remote-write receiver, a missing value is a scrape whose sample
// was lost, a repeated value is a sample delivered twice, and more samples
// than expected from one agent's scrape interval (compare Farm.Scrapes) mean
// more than one agent scraped the target.
package farm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultService    = "farm"
	DefaultListenHost = "127.0.0.1"
)

// readHeaderTimeout keeps a stuck client from holding a connection forever;
// scrapes on loopback send their headers at once.
const readHeaderTimeout = 5 * time.Second

// Config describes a farm. The zero value, with Targets set, is valid.
type Config struct {
	// Targets is the number of targets, at least 1.
	Targets int
	// Series is the number of farm_series gauges each target serves.
	Series int
	// Sizes, when set, gives targets unequal sizes: target i serves
	// Sizes[i % len(Sizes)] farm_series gauges instead of Series.
	Sizes []int
	// ListenHost is the host every target listens on; DefaultListenHost if empty.
	ListenHost string
	// BasePort is the port of target 0; target i listens on BasePort+i.
	// Zero gives every target a free port chosen by the kernel.
	BasePort int
	// Unhealthy is how many targets answer /health with 500. They are the
	// last ones, so target-0 is always healthy when any target is.
	Unhealthy int
	// Service is the Consul service name targets register as;
	// DefaultService if empty.
	Service string
	// Tags are the Consul tags of every registered instance.
	Tags []string
	// AdvertiseHost is the host registered in Consul, as the service
	// address and in the health check's URL. Empty means ListenHost, or
	// 127.0.0.1 when it listens on every interface; a container sets the
	// name its peers reach it by.
	AdvertiseHost string
	// Logger receives one line per target and lifecycle events; nil discards.
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Targets < 1:
		return fmt.Errorf("targets must be at least 1, got %d", c.Targets)
	case c.Series < 0:
		return fmt.Errorf("series must not be negative, got %d", c.Series)
	case slices.ContainsFunc(c.Sizes, func(n int) bool { return n < 0 }):
		return fmt.Errorf("sizes must not be negative, got %v", c.Sizes)
	case c.Unhealthy < 0 || c.Unhealthy > c.Targets:
		return fmt.Errorf("unhealthy must be between 0 and targets (%d), got %d", c.Targets, c.Unhealthy)
	case c.BasePort < 0 || c.BasePort > 0 && c.BasePort+c.Targets-1 > 65535:
		return fmt.Errorf("base port must be 0 or leave room for %d targets below 65536, got %d", c.Targets, c.BasePort)
	}
	return nil
}

// size is the number of farm_series gauges target i serves.
func (c Config) size(i int) int {
	if len(c.Sizes) > 0 {
		return c.Sizes[i%len(c.Sizes)]
	}
	return c.Series
}

// Target is a snapshot of one target.
type Target struct {
	// ID is "target-<i>", also the farm_target_info target label and the
	// Consul service meta "target".
	ID string
	// Addr is the host:port serving /metrics and /health.
	Addr string
	// Healthy tells whether /health currently answers 200.
	Healthy bool
}

// Farm is a set of running targets. Its methods are safe for concurrent use.
type Farm struct {
	cfg     Config
	logger  *slog.Logger
	targets []*target
	byID    map[string]*target

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start listens on every target's port and serves until Close. ctx bounds
// only the listening; it is not kept. On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Farm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid farm config: %w", err)
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = DefaultListenHost
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Farm{
		cfg:    cfg,
		logger: logger.With("component", "farm"),
		byID:   make(map[string]*target, cfg.Targets),
	}

	var lc net.ListenConfig
	listeners := make([]net.Listener, 0, cfg.Targets)
	for i := range cfg.Targets {
		port := 0
		if cfg.BasePort > 0 {
			port = cfg.BasePort + i
		}
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(port)))
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen for target %d: %w", i, err)
		}
		listeners = append(listeners, l)
		t := newTarget(i, l.Addr().String(), cfg.size(i), i < cfg.Targets-cfg.Unhealthy)
		f.targets = append(f.targets, t)
		f.byID[t.id] = t
	}

	for i, t := range f.targets {
		t.srv = &http.Server{
			Handler:           t.handler(),
			ReadHeaderTimeout: readHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(f.logger.Handler(), slog.LevelWarn),
		}
		f.wg.Go(func() {
			if err := t.srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.logger.Error("target stopped serving", "target", t.id, "err", err)
			}
		})
		f.logger.Debug("target started", "target", t.id, "addr", t.addr, "healthy", t.healthy.Load())
	}
	return f, nil
}

// Targets returns a snapshot of the targets in ID order.
func (f *Farm) Targets() []Target {
	out := make([]Target, len(f.targets))
	for i, t := range f.targets {
		out[i] = Target{ID: t.id, Addr: t.addr, Healthy: t.healthy.Load()}
	}
	return out
}

// Scrapes returns how many times the target's /metrics has been served,
// which is the value of farm_scrapes_total in the latest response. It
// returns 0 for an unknown ID.
func (f *Farm) Scrapes(id string) uint64 {
	t, ok := f.byID[id]
	if !ok {
		return 0
	}
	return t.scrapes.Load()
}

// SetHealthy makes the target's /health answer 200 (true) or 500 (false),
// so tests can make a target's Consul check pass or fail.
func (f *Farm) SetHealthy(id string, healthy bool) error {
	t, ok := f.byID[id]
	if !ok {
		return fmt.Errorf("unknown target %q", id)
	}
	t.healthy.Store(healthy)
	return nil
}

// Close stops every target, closing open connections, and waits for the
// servers to return. It does not deregister from Consul; see Deregister.
// Calling it again does nothing.
func (f *Farm) Close() error {
	var errs []error
	f.closeOnce.Do(func() {
		for _, t := range f.targets {
			if err := t.srv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close target %s: %w", t.id, err))
			}
		}
		f.wg.Wait()
	})
	return errors.Join(errs...)
}

// target is one synthetic scrape target.
type target struct {
	id      string
	addr    string
	srv     *http.Server
	scrapes atomic.Uint64
	healthy atomic.Bool
	// tail is everything after the counter's value; it never changes, so
	// it is rendered once.
	tail []byte
}

const metricsHead = "# HELP farm_scrapes_total Scrapes of this target's /metrics, including this one.\n" +
	"# TYPE farm_scrapes_total counter\n" +
	"farm_scrapes_total "

// contentType is the Prometheus text format; Prometheus 3 refuses a scrape
// without a valid Content-Type unless a fallback is configured.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

func newTarget(i int, addr string, series int, healthy bool) *target {
	t := &target{id: "target-" + strconv.Itoa(i), addr: addr}
	t.healthy.Store(healthy)

	b := []byte("\n")
	if series > 0 {
		b = append(b, "# HELP farm_series Synthetic gauges; the value is the series index.\n"+
			"# TYPE farm_series gauge\n"...)
		for s := range series {
			b = fmt.Appendf(b, "farm_series{series=\"%d\"} %d\n", s, s)
		}
	}
	b = append(b, "# HELP farm_target_info The farm target serving these metrics.\n"+
		"# TYPE farm_target_info gauge\n"...)
	b = fmt.Appendf(b, "farm_target_info{target=%q} 1\n", t.id)
	t.tail = b
	return t
}

func (t *target) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", t.serveMetrics)
	mux.HandleFunc("GET /health", t.serveHealth)
	return mux
}

func (t *target) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// The GET pattern also matches HEAD, which must not count as a scrape.
		w.Header().Set("Content-Type", contentType)
		return
	}
	n := t.scrapes.Add(1)
	body := make([]byte, 0, len(metricsHead)+20+len(t.tail))
	body = append(body, metricsHead...)
	body = strconv.AppendUint(body, n, 10)
	body = append(body, t.tail...)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (t *target) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if t.healthy.Load() {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	http.Error(w, "unhealthy", http.StatusInternalServerError)
}

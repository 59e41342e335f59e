package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"golang.org/x/crypto/bcrypt"
)

// ReceiverOptions configures RunReceiver. The zero value is the default
// setup: out-of-order samples are rejected, as they are by a stock
// Prometheus, and nothing is scraped.
type ReceiverOptions struct {
	// Config is the server's configuration file; its RemoteWriteURL is
	// ignored. Set OutOfOrderTimeWindow to accept out-of-order samples,
	// ConsulAddr and Services to scrape something (such as the agents).
	Config PromConfig
	// Port is the listen port on 127.0.0.1; a free one if zero.
	Port int
	// ExtraArgs are appended to the command line, e.g.
	// "--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request".
	ExtraArgs []string
	// BasicAuth, when set, protects every path of the server with this user
	// and password (a --web.config.file); the Receiver's own requests send
	// them, and RemoteWriteURL carries them as userinfo.
	BasicAuth *url.Userinfo
}

// Receiver is a Prometheus server that accepts remote write. Query it
// through Query, QueryRange, RawSamples or API.
type Receiver struct {
	// URL is the base URL of the server, e.g. "http://127.0.0.1:41234".
	URL string
	// RemoteWriteURL is the remote-write endpoint, URL + "/api/v1/write",
	// with ReceiverOptions.BasicAuth as userinfo when set.
	RemoteWriteURL string
	// DataDir is the TSDB directory, kept across Stop and Start.
	DataDir string
	// LogPath is the file the server logs to.
	LogPath string
	// Port is the listen port.
	Port int

	proc      *Process
	args      []string
	api       v1.API
	transport *http.Transport
	rt        http.RoundTripper // transport, with the basic auth if any
}

// RunReceiver starts Prometheus as a remote-write receiver on a loopback
// port and waits until /-/ready answers 200. Closing g stops it.
func RunReceiver(ctx context.Context, g *Group, opts ReceiverOptions) (*Receiver, error) {
	bin, dir, err := g.prepare(PrometheusBinary, "receiver")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	cfg := opts.Config
	cfg.RemoteWriteURL = ""
	if err := os.WriteFile(cfgPath, []byte(cfg.Render()), 0o644); err != nil {
		return nil, fmt.Errorf("write prometheus config: %w", err)
	}
	port := opts.Port
	if port == 0 {
		if port, err = Port(); err != nil {
			return nil, err
		}
	}
	addr := Loopback(port)
	r := &Receiver{
		URL:            "http://" + addr,
		RemoteWriteURL: "http://" + addr + "/api/v1/write",
		DataDir:        filepath.Join(dir, "data"),
		LogPath:        filepath.Join(dir, "prometheus.log"),
		Port:           port,
		transport:      http.DefaultTransport.(*http.Transport).Clone(),
	}
	r.rt = r.transport
	var webArgs []string
	if opts.BasicAuth != nil {
		webCfg, err := writeBasicAuthConfig(dir, opts.BasicAuth)
		if err != nil {
			return nil, err
		}
		webArgs = []string{"--web.config.file=" + webCfg}
		pw, _ := opts.BasicAuth.Password()
		r.rt = basicAuthTransport{next: r.transport, user: opts.BasicAuth.Username(), password: pw}
		r.RemoteWriteURL = (&url.URL{Scheme: "http", User: opts.BasicAuth, Host: addr, Path: "/api/v1/write"}).String()
	}
	client, err := promapi.NewClient(promapi.Config{Address: r.URL, RoundTripper: r.rt})
	if err != nil {
		return nil, fmt.Errorf("create prometheus api client: %w", err)
	}
	r.api = v1.NewAPI(client)
	g.OnClose(func() error { r.transport.CloseIdleConnections(); return nil })

	r.args = append(append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + r.DataDir,
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
		"--log.level=info",
	}, webArgs...), opts.ExtraArgs...)
	r.proc = g.NewProcess("prometheus", bin, r.LogPath)
	g.OnClose(r.Stop)
	return r, r.start(ctx)
}

// ReceiverAt returns a Receiver for querying a Prometheus server the
// harness did not start, such as one in a container, at url; Start and
// Stop do nothing on it.
func ReceiverAt(url string) (*Receiver, error) {
	r := &Receiver{URL: url, RemoteWriteURL: url + "/api/v1/write", transport: http.DefaultTransport.(*http.Transport).Clone()}
	r.rt = r.transport
	client, err := promapi.NewClient(promapi.Config{Address: url, RoundTripper: r.transport})
	if err != nil {
		return nil, fmt.Errorf("create prometheus api client: %w", err)
	}
	r.api = v1.NewAPI(client)
	return r, nil
}

// Start starts the server again after Stop, on the same port and data
// directory, and waits until it is ready.
func (r *Receiver) Start() error {
	if r.proc == nil {
		return nil
	}
	return r.start(context.Background())
}

func (r *Receiver) start(ctx context.Context) error {
	if err := r.proc.Start(r.args); err != nil {
		return err
	}
	hc := &http.Client{Transport: r.rt, Timeout: readyRequestTimeout}
	return r.proc.WaitReady(ctx, startTimeout, pollInterval, func(ctx context.Context) error {
		return HTTPReady(ctx, hc, r.URL+"/-/ready")
	})
}

// HTTPReady returns nil when a GET of url answers 200.
func HTTPReady(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period) to
// simulate the receiver being down. Stopping a stopped server does nothing.
func (r *Receiver) Stop() error {
	defer r.transport.CloseIdleConnections()
	if r.proc == nil {
		return nil
	}
	if err := r.proc.StopGracefully(); err != nil {
		return fmt.Errorf("stop prometheus: %w", err)
	}
	return nil
}

// Pid is the server's process ID, 0 when the harness did not start it
// (ReceiverAt) or it is not running.
func (r *Receiver) Pid() int {
	if r.proc == nil {
		return 0
	}
	return r.proc.Pid()
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

// writeBasicAuthConfig writes an exporter-toolkit web config that requires
// auth's user and password, and returns its path.
func writeBasicAuthConfig(dir string, auth *url.Userinfo) (string, error) {
	pw, _ := auth.Password()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("hash receiver password: %w", err)
	}
	p := filepath.Join(dir, "web.yml")
	content := fmt.Sprintf("basic_auth_users:\n  %q: %q\n", auth.Username(), hash)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("write receiver web config: %w", err)
	}
	return p, nil
}

// basicAuthTransport adds basic auth to every request.
type basicAuthTransport struct {
	next           http.RoundTripper
	user, password string
}

func (t basicAuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(t.user, t.password)
	return t.next.RoundTrip(req)
}

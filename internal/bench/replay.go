package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// The replay run: each single agent (shoal, Prometheus in agent mode,
// vmagent) scrapes through a receiver outage of Config.ReplayOutage, made by
// a gate in front of the receiver that answers 503 while closed, and the
// receiver measures how long the agent takes, once the gate opens, to
// deliver the outage's samples, and how many of them arrive.
const (
	// DefaultReplayOutage is how long the receiver is down in a replay run.
	DefaultReplayOutage = 2 * time.Minute
	// replayTimeout bounds the wait for the backlog after the outage.
	replayTimeout = 10 * time.Minute
	// replayStall ends the wait when the outage window's count has not
	// grown for this long: what is missing then is lost.
	replayStall = 30 * time.Second
	// replayComplete is the completeness of the outage window that counts
	// as delivered (the window's edges cut scrapes in two).
	replayComplete = 0.995
	// replayBaseline is the window, before the outage, whose series count
	// gives the samples the outage window must hold.
	replayBaseline = 10 * time.Second
)

// ReplayRuns are the runs that get a replay measurement, in order.
var ReplayRuns = []string{RunShoal, RunPrometheus, RunVMAgent}

// gate is a reverse proxy to the receiver that answers 503 while closed.
type gate struct {
	url    string // base URL
	closed atomic.Bool
	srv    *http.Server
}

func startGate(target string) (*gate, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &gate{url: "http://" + ln.Addr().String()}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.closed.Load() {
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, "receiver down (benchmark outage)", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

func (g *gate) Close() error { return g.srv.Close() }

// ReplayResult is one replay measurement.
type ReplayResult struct {
	Run     string
	Rep     int
	Label   string
	Outage  time.Duration
	Series  float64 // series before the outage
	Samples float64 // samples at the receiver with timestamps in the outage
	// Replay is the time from the receiver's return until the outage's
	// samples had arrived (or until the last of them arrived, when they
	// never all did).
	Replay time.Duration
	// Complete tells whether the outage window reached replayComplete.
	Complete bool
	// CPU is the agent's CPU time during the replay.
	CPU time.Duration
	// HWM is the agent's peak resident memory at the end.
	HWM float64
	// RcvOutOfOrder and RcvRejected are the receiver's out-of-order samples
	// and 400 answers during the measurement.
	RcvOutOfOrder, RcvRejected float64
	Interval                   time.Duration
}

// Completeness is the outage window's samples over one per series per
// interval.
func (r ReplayResult) Completeness() float64 {
	return div(r.Samples, r.Series*r.Outage.Seconds()/r.Interval.Seconds())
}

// SamplesPerSecond is the backlog's delivery rate.
func (r ReplayResult) SamplesPerSecond() float64 { return div(r.Samples, r.Replay.Seconds()) }

// CPUPerMSample is CPU seconds per million replayed samples.
func (r ReplayResult) CPUPerMSample() float64 { return div(r.CPU.Seconds()*1e6, r.Samples) }

// RawLine is one machine-readable line.
func (r ReplayResult) RawLine() string {
	return fmt.Sprintf("REPLAY run=%s rep=%d label=%s outage_s=%g series=%.0f samples=%.0f replay_s=%.2f complete=%v "+
		"completeness=%.4f samples_per_s=%.0f cpu_s=%.3f cpu_s_per_msample=%.4f hwm_bytes=%.0f rcv_ooo=%.0f rcv_400=%.0f",
		r.Run, r.Rep, r.Label, r.Outage.Seconds(), r.Series, r.Samples, r.Replay.Seconds(), r.Complete,
		r.Completeness(), r.SamplesPerSecond(), r.CPU.Seconds(), r.CPUPerMSample(), r.HWM, r.RcvOutOfOrder, r.RcvRejected)
}

var (
	rcvOutOfOrder = testenv.Counter{Name: "prometheus_tsdb_out_of_order_samples_total"}
	rcvRejected   = testenv.Counter{Name: "prometheus_http_requests_total", Labels: `handler="/api/v1/write",code="400"`}
)

func (b *Bench) receiverCounters(ctx context.Context) (ooo, rejected float64, err error) {
	hc := &http.Client{Timeout: requestTimeout}
	m, err := testenv.FetchCounters(ctx, hc, b.rcv.URL+"/metrics", []testenv.Counter{rcvOutOfOrder, rcvRejected})
	return m[rcvOutOfOrder], m[rcvRejected], err
}

// replay runs the replay measurements of the single-agent runs, Count
// times interleaved, and prints their lines and summary.
func (b *Bench) replay(ctx context.Context) error {
	var results []ReplayResult
	for rep := 1; rep <= b.cfg.Count; rep++ {
		for _, run := range ReplayRuns {
			if run == RunVMAgent && b.cfg.VMAgentBin == "" {
				if rep == 1 {
					fmt.Fprintln(b.raw, "SKIP replay run=vmagent: no vmagent binary")
				}
				continue
			}
			b.logf("replay %s, repetition %d of %d (outage %v)", run, rep, b.cfg.Count, b.cfg.ReplayOutage)
			r, err := b.replayOnce(ctx, run, rep)
			if err != nil {
				return fmt.Errorf("replay %s repetition %d: %w", run, rep, err)
			}
			fmt.Fprintln(b.raw, r.RawLine())
			results = append(results, r)
		}
	}
	var rep strings.Builder
	WriteReplayReport(&rep, results, b.cfg.Count)
	fmt.Fprint(b.raw, "\n"+rep.String())
	return nil
}

func (b *Bench) replayOnce(ctx context.Context, run string, rep int) (ReplayResult, error) {
	label := fmt.Sprintf("replay-%s-%d", run, rep)
	r := ReplayResult{Run: run, Rep: rep, Label: label, Outage: b.cfg.ReplayOutage, Interval: b.cfg.Interval}
	g, err := startGate(b.rcv.URL)
	if err != nil {
		return r, err
	}
	defer func() { _ = g.Close() }()
	cfg := b.scrapeConfig(label, b.cfg.Interval, serviceSingle)
	cfg.RemoteWriteURL = g.url + "/api/v1/write"
	p, err := b.newSingle(run, label, cfg)
	if err != nil {
		return r, err
	}
	defer func() { _ = p.stop() }()
	if err := p.start(ctx); err != nil {
		return r, err
	}
	procs := []*subject{p}
	if err := b.waitDelivering(ctx, label, b.cfg.Targets, procs); err != nil {
		return r, err
	}
	// The baseline ends a batch deadline and more before the outage, so
	// its samples have arrived when it is counted.
	if err := sleep(ctx, warmupIntervals*b.cfg.Interval+replayBaseline+2*promBatchSendDeadline); err != nil {
		return r, err
	}
	baseEnd := time.Now().Add(-2 * promBatchSendDeadline)
	if _, r.Series, err = b.countSamples(ctx, label, baseEnd.Add(-replayBaseline), baseEnd); err != nil {
		return r, err
	}
	ooo0, rej0, err := b.receiverCounters(ctx)
	if err != nil {
		return r, err
	}

	g.closed.Store(true)
	t0 := time.Now()
	if err := sleep(ctx, b.cfg.ReplayOutage); err != nil {
		return r, err
	}
	s0, err := readSnapshot(ctx, procs)
	if err != nil {
		return r, err
	}
	g.closed.Store(false)
	t1 := time.Now()
	r.Outage = time.Duration(t1.UnixMilli()-t0.UnixMilli()) * time.Millisecond

	var last time.Time // when the count last grew
	want := r.Series * r.Outage.Seconds() / b.cfg.Interval.Seconds() * replayComplete
	err = waitFor(ctx, replayTimeout, fmt.Sprintf("the outage's samples of %s", label), procs, func(ctx context.Context) (bool, error) {
		n, _, err := b.countSamples(ctx, label, t0, t1)
		if err != nil {
			return false, err
		}
		now := time.Now()
		if n > r.Samples || last.IsZero() {
			r.Samples, last = n, now
		}
		if n >= want {
			r.Complete = true
			return true, nil
		}
		return now.Sub(last) > replayStall, nil
	})
	if err != nil {
		return r, err
	}
	r.Replay = last.Sub(t1)
	s1, err := readSnapshot(ctx, procs)
	if err != nil {
		return r, err
	}
	r.CPU, r.HWM = s1.cpu-s0.cpu, s1.hwm
	ooo1, rej1, err := b.receiverCounters(ctx)
	r.RcvOutOfOrder, r.RcvRejected = ooo1-ooo0, rej1-rej0
	return r, err
}

// WriteReplayReport writes the medians of the replay measurements and the
// ratios of shoal's to its peers', per repetition.
func WriteReplayReport(w io.Writer, results []ReplayResult, reps int) {
	by := map[string][]*ReplayResult{}
	for i := range results {
		r := &results[i]
		if r.Rep < 1 || r.Rep > reps {
			continue
		}
		if by[r.Run] == nil {
			by[r.Run] = make([]*ReplayResult, reps)
		}
		by[r.Run][r.Rep-1] = r
	}
	vals := func(rs []*ReplayResult, m func(ReplayResult) float64) []float64 {
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = nanIfNil(r, m)
		}
		return out
	}
	type row struct {
		name   string
		digits int
		of     func(ReplayResult) float64
		ratio  bool
	}
	rows := []row{
		{"replay_s", 2, func(r ReplayResult) float64 { return r.Replay.Seconds() }, true},
		{"samples/s", 0, ReplayResult.SamplesPerSecond, true},
		{"cpu_s/Msample", 3, ReplayResult.CPUPerMSample, true},
		{"hwm_B", 0, func(r ReplayResult) float64 { return r.HWM }, true},
		{"completeness", 4, ReplayResult.Completeness, false},
		{"rcv_ooo", 0, func(r ReplayResult) float64 { return r.RcvOutOfOrder }, false},
		{"rcv_400", 0, func(r ReplayResult) float64 { return r.RcvRejected }, false},
	}
	var runs []string
	for _, r := range ReplayRuns {
		if by[r] != nil {
			runs = append(runs, r)
		}
	}
	fmt.Fprintf(w, "NOTE replay after a receiver outage, median (min–max) over %d repetitions\n", reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "REPLAYTABLE metric")
	for _, r := range runs {
		fmt.Fprintf(tw, "\t%s", r)
	}
	fmt.Fprintln(tw)
	for _, m := range rows {
		fmt.Fprintf(tw, "REPLAYTABLE %s", m.name)
		for _, r := range runs {
			fmt.Fprintf(tw, "\t%s", formatSpread(Summarize(vals(by[r], m.of)), m.digits))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	if by[RunShoal] == nil {
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "REPLAYRATIO metric")
	var peers []string
	for _, r := range runs[1:] {
		peers = append(peers, r)
		fmt.Fprintf(tw, "\tshoal/%s", r)
	}
	fmt.Fprintln(tw)
	for _, m := range rows {
		if !m.ratio {
			continue
		}
		fmt.Fprintf(tw, "REPLAYRATIO %s", m.name)
		for _, p := range peers {
			fmt.Fprintf(tw, "\t%s", formatSpread(Summarize(Ratios(vals(by[RunShoal], m.of), vals(by[p], m.of))), 3))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

func nanIfNil(r *ReplayResult, m func(ReplayResult) float64) float64 {
	if r == nil {
		return div(0, 0)
	}
	return m(*r)
}

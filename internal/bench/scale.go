package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Shape is one size of the cost curve: Targets farm targets of Series
// farm_series gauges each, scraped every Interval by one agent.
type Shape struct {
	// Name is how -scale names it: "100k", or "TxS@I" for a custom one.
	Name            string
	Targets, Series int
	Interval        time.Duration
}

// Nominal is the shape's farm_series count, the size it is named after;
// the receiver counts a few more per target (farm_scrapes_total,
// farm_target_info and the scrape's own up, scrape_* series).
func (s Shape) Nominal() int { return s.Targets * s.Series }

// Window is the measured window of a run of the shape: Config.Duration, or
// minScaleIntervals intervals when that is longer, so that a long interval
// still spreads each series' samples over several scrapes.
func (s Shape) Window(duration time.Duration) time.Duration {
	return max(duration, minScaleIntervals*s.Interval)
}

// minScaleIntervals is the fewest scrape intervals a scale run's window
// spans: with fewer, a target's one scrape more or less in the window moves
// completeness by more than a few percent.
const minScaleIntervals = 6

// ScaleShapes are the named sizes of the cost curve. Targets and series per
// target both grow. The two big sizes scrape less often so that the
// samples per second stay within what this 2-core machine ingests at the
// receiver while it also runs the agent and the farm (one agent at a time):
// 2,000/s at 10k, 20,000/s at 100k, 30,000/s at 300k, 50,000/s at 1M.
var ScaleShapes = []Shape{
	{Name: "10k", Targets: 20, Series: 500, Interval: 5 * time.Second},
	{Name: "100k", Targets: 100, Series: 1000, Interval: 5 * time.Second},
	{Name: "300k", Targets: 200, Series: 1500, Interval: 10 * time.Second},
	{Name: "1m", Targets: 500, Series: 2000, Interval: 20 * time.Second},
}

// ScaleRuns are the agents a scale run compares, in order.
var ScaleRuns = []string{RunShoal, RunPrometheus, RunVMAgent}

// scaleAllowed are the runs a scale run may list, in report order: a
// candidate only when asked for (-only shoal,candidate,vmagent).
var scaleAllowed = []string{RunShoal, RunCandidate, RunPrometheus, RunVMAgent}

// maxScaleSeries bounds a custom shape: beyond it the receiver of this
// benchmark runs out of a shared machine's memory.
const maxScaleSeries = 5_000_000

// ParseScale parses -scale: a comma-separated list of the names of
// ScaleShapes ("10k,100k,300k,1m") or custom shapes TARGETSxSERIES@INTERVAL
// ("50x200@5s"). Duplicates are errors; the order is kept.
func ParseScale(s string) ([]Shape, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Shape
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		sh, err := parseShape(item)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o Shape) bool { return o.Name == sh.Name }) {
			return nil, fmt.Errorf("size %q listed twice", item)
		}
		out = append(out, sh)
	}
	return out, nil
}

func parseShape(item string) (Shape, error) {
	if i := slices.IndexFunc(ScaleShapes, func(s Shape) bool { return s.Name == item }); i >= 0 {
		return ScaleShapes[i], nil
	}
	names := make([]string, len(ScaleShapes))
	for i, s := range ScaleShapes {
		names[i] = s.Name
	}
	bad := func(why string) error {
		return fmt.Errorf("size %q: %s; allowed: %s or TARGETSxSERIES@INTERVAL such as 50x200@5s", item, why, strings.Join(names, ", "))
	}
	dims, iv, ok := strings.Cut(item, "@")
	if !ok {
		return Shape{}, bad("unknown name")
	}
	ts, ss, ok := strings.Cut(dims, "x")
	if !ok {
		return Shape{}, bad("want TARGETSxSERIES before @")
	}
	targets, err := strconv.Atoi(ts)
	if err != nil || targets < 1 {
		return Shape{}, bad(fmt.Sprintf("targets must be a whole number of at least 1, got %q", ts))
	}
	series, err := strconv.Atoi(ss)
	if err != nil || series < 1 {
		return Shape{}, bad(fmt.Sprintf("series per target must be a whole number of at least 1, got %q", ss))
	}
	if targets*series > maxScaleSeries {
		return Shape{}, bad(fmt.Sprintf("at most %d series, got %d", maxScaleSeries, targets*series))
	}
	interval, err := time.ParseDuration(iv)
	if err != nil || interval < time.Second {
		return Shape{}, bad(fmt.Sprintf("interval must be a duration of at least 1s, got %q", iv))
	}
	return Shape{Name: item, Targets: targets, Series: series, Interval: interval}, nil
}

// ScaleResult is one agent's run at one size.
type ScaleResult struct {
	Shape Shape
	Result
}

// RawLine is one machine-readable line per result; ParseScaleLine reads
// it back.
func (s ScaleResult) RawLine() string {
	return fmt.Sprintf("SCALE size=%s series_per_target=%d farm_cpu_s=%.3f receiver_cpu_s=%.3f farm_cores=%.3f receiver_cores=%.3f %s",
		s.Shape.Name, s.Shape.Series, s.FarmCPU.Seconds(), s.ReceiverCPU.Seconds(),
		div(s.FarmCPU.Seconds(), s.Window.Seconds()), div(s.ReceiverCPU.Seconds(), s.Window.Seconds()),
		strings.TrimPrefix(s.Result.RawLine(), "RAW "))
}

// runScale runs the cost curve: for each shape a farm of its size, and
// each agent of cfg.Runs against it, one at a time, Count times
// interleaved. Every run gets a fresh receiver, so that the receiver's
// own cost does not grow with the runs before it.
func (b *Bench) runScale(ctx context.Context) ([]ScaleResult, error) {
	if err := os.Setenv(testenv.EnvPrometheusBin, b.cfg.PrometheusBin); err != nil {
		return nil, err
	}
	b.logf("starting consul")
	var err error
	if b.consul, err = testenv.RunConsul(ctx, b.g, testenv.ConsulOptions{}); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.raw, "SCALE-NOTE %s; one agent at a time against the farm, each run with a fresh receiver; window = max(-duration, %d intervals)\n",
		Machine(), minScaleIntervals)
	var out []ScaleResult
	for _, sh := range b.cfg.Scale {
		rs, err := b.scaleShape(ctx, sh)
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("size %s: %w", sh.Name, err)
		}
	}
	return out, nil
}

// scaleShape runs every agent Count times at one size.
func (b *Bench) scaleShape(ctx context.Context, sh Shape) (_ []ScaleResult, err error) {
	b.logf("size %s: starting the farm: %d targets of %d series, interval %v", sh.Name, sh.Targets, sh.Series, sh.Interval)
	f, err := farm.Start(ctx, farm.Config{Targets: sh.Targets, Series: sh.Series})
	if err != nil {
		return nil, err
	}
	b.g.OnClose(f.Close)
	node, service := "bench-scale-"+sh.Name, "bench-scale-"+sh.Name
	defer func() {
		err = errors.Join(err, DeregisterNode(context.WithoutCancel(ctx), b.consul.Client(), node), f.Close())
	}()
	var targets []Instance
	for _, t := range f.Targets() {
		targets = append(targets, Instance{ID: t.ID, Addr: t.Addr})
	}
	if err := RegisterInstances(ctx, b.consul.Client(), node, service, targets); err != nil {
		return nil, err
	}
	// The size's own copy of the benchmark: its config is the shape's.
	sb := *b
	sb.cfg.Targets, sb.cfg.Series, sb.cfg.Interval = sh.Targets, sh.Series, sh.Interval
	sb.cfg.Duration = sh.Window(b.cfg.Duration)
	sb.farm = f

	var out []ScaleResult
	for rep := 1; rep <= b.cfg.Count; rep++ {
		for _, run := range rotate(b.cfg.Runs, rep) {
			if run == RunVMAgent && b.cfg.VMAgentBin == "" {
				if rep == 1 {
					fmt.Fprintf(b.raw, "SKIP size=%s run=vmagent: no vmagent binary (apt-get install -y victoria-metrics, or -vmagent PATH)\n", sh.Name)
				}
				continue
			}
			b.logf("size %s: %s, repetition %d of %d", sh.Name, run, rep, b.cfg.Count)
			r, err := sb.scaleOnce(ctx, sh, service, run, rep)
			if err != nil {
				return out, fmt.Errorf("%s repetition %d: %w", run, rep, err)
			}
			fmt.Fprintln(b.raw, r.RawLine())
			out = append(out, r)
		}
	}
	return out, nil
}

// scaleOnce runs one agent against a fresh receiver.
func (b *Bench) scaleOnce(ctx context.Context, sh Shape, service, run string, rep int) (ScaleResult, error) {
	label := fmt.Sprintf("%s-%s-%d", run, sh.Name, rep)
	r := ScaleResult{Shape: sh, Result: Result{Run: run, Rep: rep, Label: label, Agents: 1, Targets: sh.Targets, Interval: sh.Interval}}
	rcv, err := testenv.RunReceiver(ctx, b.g, testenv.ReceiverOptions{})
	if err != nil {
		return r, err
	}
	b.rcv = rcv
	defer func() {
		// Nothing is measured any more; the TSDB of 1M series is large.
		_ = rcv.Stop()
		_ = os.RemoveAll(rcv.DataDir)
	}()
	p, err := b.newSingle(run, label, b.scrapeConfig(label, sh.Interval, service))
	if err != nil {
		return r, err
	}
	defer func() { _ = p.stop() }()
	if err := p.start(ctx); err != nil {
		return r, err
	}
	err = b.measure(ctx, &r.Result, []*subject{p})
	return r, err
}

// Machine describes this machine for reports and plot titles: CPU model,
// cores and memory, from /proc.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := parseKB(v); err == nil {
					mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<30))
				}
			}
		}
	}
	return fmt.Sprintf("%d cores %s%s", runtime.NumCPU(), model, mem)
}

// scale runs the cost curve, writes its report and, when configured, its
// plot.
func (b *Bench) scale(ctx context.Context) error {
	results, err := b.runScale(ctx)
	if len(results) > 0 {
		var rep strings.Builder
		WriteScaleReport(&rep, results, b.cfg.Count)
		fmt.Fprint(b.raw, "\n"+rep.String())
		if b.cfg.Plot != "" {
			title := fmt.Sprintf("%s, %s", time.Now().UTC().Format(time.DateOnly), Machine())
			if perr := WritePlot(b.cfg.Plot, results, title); perr != nil {
				err = errors.Join(err, fmt.Errorf("plot: %w", perr))
			} else {
				fmt.Fprintf(b.raw, "PLOT %s\n", b.cfg.Plot)
			}
		}
	}
	return err
}

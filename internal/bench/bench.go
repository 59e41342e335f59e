package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Defaults of Config.
const (
	DefaultTargets         = 100
	DefaultSeries          = 1000
	DefaultInterval        = 5 * time.Second
	DefaultDuration        = 60 * time.Second
	DefaultCount           = 3
	DefaultNonOwnedTargets = 10_000
	// FleetSize is the number of agents of the fleet run; it scrapes
	// FleetSize times the targets of a single agent.
	FleetSize = 3
	// warmupIntervals pass between every target's samples arriving at the
	// receiver and the start of the measured window.
	warmupIntervals = 2
	// profileSeconds is the length of the CPU profile.
	profileSeconds = 30
)

// Consul names of the targets.
const (
	serviceSingle = "bench"       // Targets farm targets, for the single runs
	serviceFleet  = "bench-fleet" // FleetSize×Targets, registered per fleet run
	nodeSingle    = "bench-targets"
	nodeFleet     = "bench-fleet"
	placeholderID = "placeholder"
)

// Config is a benchmark. Binaries are paths; VMAgentBin may be empty (the
// vmagent run is skipped, saying so).
type Config struct {
	Targets, Series    int
	Interval, Duration time.Duration
	Count              int
	// Runs are run names (see ParseRuns); the repeated ones run Count times,
	// interleaved, then RunNonOwned once.
	Runs []string
	// Out receives the raw lines, the report and the profiles.
	Out string
	// Profile takes a CPU and a heap profile of a shoal agent at the end.
	Profile bool
	// ReplayOutage is how long the receiver is down in RunReplay.
	ReplayOutage time.Duration
	// NonOwnedTargets is how many targets RunNonOwned registers.
	NonOwnedTargets int
	// Scale, when set, runs the cost curve instead: every agent of Runs
	// (ScaleRuns only) at each shape, with the shape's targets, series and
	// interval in place of Targets, Series and Interval. Duration is the
	// least window (see Shape.Window).
	Scale []Shape
	// Plot, with Scale, is a PNG file to draw the curve in.
	Plot string

	ShoalBin, PrometheusBin, VMAgentBin string
	// CandidateBin and CandidateArgs are RunCandidate's shoal binary and
	// the flags it gets on top of RunShoal's.
	CandidateBin  string
	CandidateArgs []string
	// GoBin is the go command, for building the pprof binary and reading
	// profiles; RepoRoot is this repository, whose cmd/shoal it builds.
	GoBin, RepoRoot string

	// Stdout receives results, Stderr progress.
	Stdout, Stderr io.Writer
}

// Validate reports the first invalid field. Targets and Series are the
// farm's, which validates them.
func (c Config) Validate() error {
	if err := (farm.Config{Targets: c.Targets, Series: c.Series}).Validate(); err != nil {
		return err
	}
	switch {
	case c.Interval < time.Second:
		return fmt.Errorf("interval must be at least 1s, got %v", c.Interval)
	case c.Duration < c.Interval:
		return fmt.Errorf("duration must be at least one interval (%v), got %v", c.Interval, c.Duration)
	case c.Count < 1:
		return fmt.Errorf("count must be at least 1, got %d", c.Count)
	case c.NonOwnedTargets < 1 || c.NonOwnedTargets > 250*250*250:
		return fmt.Errorf("non-owned targets must be between 1 and %d, got %d", 250*250*250, c.NonOwnedTargets)
	case slices.Contains(c.Runs, RunReplay) && c.ReplayOutage < c.Interval:
		return fmt.Errorf("replay outage must be at least one interval (%v), got %v", c.Interval, c.ReplayOutage)
	case len(c.Scale) > 0 && slices.ContainsFunc(c.Runs, func(r string) bool { return !slices.Contains(scaleAllowed, r) }):
		return fmt.Errorf("a scale run compares only %s, got runs %s", joinRuns(scaleAllowed), joinRuns(c.Runs))
	case slices.Contains(c.Runs, RunCandidate) && c.CandidateBin == "":
		return errors.New("the candidate run needs a candidate binary")
	case c.Plot != "" && len(c.Scale) == 0:
		return errors.New("a plot needs a scale run")
	case c.ShoalBin == "" || c.PrometheusBin == "":
		return errors.New("the shoal and prometheus binaries are required")
	case c.Out == "":
		return errors.New("an output directory is required")
	}
	return nil
}

// Bench is a running benchmark environment: Consul, the receiver and the
// farm, shared by every run.
type Bench struct {
	cfg Config
	dir string         // processes' directories and logs
	g   *testenv.Group // every process of the benchmark

	consul  *testenv.Consul
	rcv     *testenv.Receiver
	farm    *farm.Farm
	targets []Instance // every farm target; the first cfg.Targets are serviceSingle

	raw      io.Writer // raw lines, also to Out/raw.txt
	pprofBin string    // built on first use
}

// Run runs the benchmark: it starts the environment, runs the repeated
// runs Count times interleaved, writes the report, then measures memory per
// non-owned target and profiles, as configured. It stops everything before
// it returns.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "shoal-bench-")
	if err != nil {
		return err
	}
	b := &Bench{cfg: cfg, dir: dir, g: testenv.NewGroup(dir)}
	defer func() {
		err = errors.Join(err, b.g.Close())
		if err == nil {
			_ = os.RemoveAll(dir)
		} else {
			b.logf("processes' logs kept in %s", dir)
		}
	}()
	rawFile, err := os.Create(filepath.Join(cfg.Out, "raw.txt"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rawFile.Close()) }()
	b.raw = io.MultiWriter(cfg.Stdout, rawFile)

	if len(cfg.Scale) > 0 {
		return b.scale(ctx)
	}
	if err := b.startEnv(ctx); err != nil {
		return err
	}
	results, err := b.repeat(ctx)
	if len(results) > 0 {
		var rep strings.Builder
		WriteReport(&rep, results, cfg.Count)
		fmt.Fprint(b.raw, "\n"+rep.String())
	}
	if err != nil {
		return err
	}
	if slices.Contains(cfg.Runs, RunReplay) {
		if err := b.replay(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(cfg.Runs, RunNonOwned) {
		if err := b.runNonOwned(ctx); err != nil {
			return fmt.Errorf("non-owned memory: %w", err)
		}
	}
	if cfg.Profile {
		if err := b.runProfile(ctx); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	return nil
}

func (b *Bench) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// startEnv starts Consul, the receiver and the farm, and registers the
// single runs' targets.
func (b *Bench) startEnv(ctx context.Context) error {
	if err := os.Setenv(testenv.EnvPrometheusBin, b.cfg.PrometheusBin); err != nil {
		return err
	}
	b.logf("starting consul and the receiver")
	var err error
	if b.consul, err = testenv.RunConsul(ctx, b.g, testenv.ConsulOptions{}); err != nil {
		return err
	}
	if b.rcv, err = testenv.RunReceiver(ctx, b.g, testenv.ReceiverOptions{}); err != nil {
		return err
	}
	n := b.cfg.Targets
	if slices.Contains(b.cfg.Runs, RunFleet) {
		n *= FleetSize
	}
	needFarm := slices.ContainsFunc(b.cfg.Runs, func(r string) bool { return r != RunNonOwned }) || b.cfg.Profile
	if !needFarm {
		return nil
	}
	b.logf("starting the farm: %d targets of %d series", n, b.cfg.Series)
	f, err := farm.Start(ctx, farm.Config{Targets: n, Series: b.cfg.Series})
	if err != nil {
		return err
	}
	b.farm = f
	b.g.OnClose(f.Close)
	for _, t := range f.Targets() {
		b.targets = append(b.targets, Instance{ID: t.ID, Addr: t.Addr})
	}
	return RegisterInstances(ctx, b.consul.Client(), nodeSingle, serviceSingle, b.targets[:b.cfg.Targets])
}

// Prometheus' own defaults, which every run keeps.
const (
	promSDRefresh         = 30 * time.Second
	promBatchSendDeadline = 5 * time.Second
)

// scrapeConfig is the configuration of a run labelled label: one job that
// discovers targets in Consul and keeps the passing ones, as in the demo
// and the end-to-end tests, with Prometheus' defaults for discovery and
// remote write. The scrape timeout is the interval: Prometheus refuses a
// longer one and the default (10 s) is longer than the default interval of
// the benchmark. shoal and Prometheus read the same file; vmagent gets it
// without remote_write and external_labels, which it takes as flags.
func (b *Bench) scrapeConfig(label string, interval time.Duration, services ...string) testenv.PromConfig {
	return testenv.PromConfig{
		ScrapeInterval:    interval,
		ScrapeTimeout:     interval,
		Job:               Job,
		ConsulAddr:        b.consul.Addr,
		Services:          services,
		SDRefresh:         promSDRefresh,
		RemoteWriteURL:    b.rcv.RemoteWriteURL,
		BatchSendDeadline: promBatchSendDeadline,
		ExternalLabels:    map[string]string{RunLabel: label},
	}
}

// Job is the job name of the one scrape config every run uses.
const Job = "farm"

// RunLabel is the external label that keeps each run's samples apart at
// the receiver; its value is "<run>-<repetition>".
const RunLabel = "run"

// repeat runs the repeated runs Count times, interleaved, printing each
// result's raw line as it comes.
func (b *Bench) repeat(ctx context.Context) ([]Result, error) {
	var results []Result
	skipped := map[string]bool{}
	for rep := 1; rep <= b.cfg.Count; rep++ {
		for _, run := range rotate(b.cfg.Runs, rep) {
			if run == RunNonOwned || run == RunReplay || skipped[run] {
				continue
			}
			if run == RunVMAgent && b.cfg.VMAgentBin == "" {
				fmt.Fprintln(b.raw, "SKIP run=vmagent: no vmagent binary (apt-get install -y victoria-metrics, or -vmagent PATH)")
				skipped[run] = true
				continue
			}
			b.logf("%s, repetition %d of %d", run, rep, b.cfg.Count)
			r, err := b.runOnce(ctx, run, rep)
			if err != nil {
				return results, fmt.Errorf("%s repetition %d: %w", run, rep, err)
			}
			fmt.Fprintln(b.raw, r.RawLine())
			results = append(results, r)
		}
	}
	return results, nil
}

// newSingle prepares the one process of a single-agent run.
func (b *Bench) newSingle(run, label string, cfg testenv.PromConfig) (*subject, error) {
	switch run {
	case RunShoal:
		return b.newShoal(b.cfg.ShoalBin, label, cfg, "")
	case RunCandidate:
		return b.newCandidate(label, cfg)
	case RunPrometheus:
		return b.newPrometheusAgent(label, cfg)
	case RunVMAgent:
		return b.newVMAgent(label, cfg)
	}
	return nil, fmt.Errorf("unknown run %q", run)
}

// runOnce starts the run's processes, measures them and stops them.
func (b *Bench) runOnce(ctx context.Context, run string, rep int) (Result, error) {
	label := fmt.Sprintf("%s-%d", run, rep)
	r := Result{Run: run, Rep: rep, Label: label, Agents: 1, Targets: b.cfg.Targets, Interval: b.cfg.Interval}
	cfg := b.scrapeConfig(label, b.cfg.Interval, serviceSingle)
	if run == RunFleet {
		return b.runFleet(ctx, r)
	}
	p, err := b.newSingle(run, label, cfg)
	if err != nil {
		return r, err
	}
	defer func() { _ = p.stop() }()
	if err := p.start(ctx); err != nil {
		return r, err
	}
	err = b.measure(ctx, &r, []*subject{p})
	return r, err
}

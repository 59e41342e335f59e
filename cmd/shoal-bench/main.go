// Command shoal-bench measures shoal side by side with Prometheus in agent
// mode and vmagent, on the same synthetic targets, and reports medians,
// spreads and ratios; see internal/bench. hack/bench.sh builds what it
// needs and runs it.
//
//	go run ./cmd/shoal-bench -count 3 -duration 60s
//	go run ./cmd/shoal-bench -only nonowned
//	go run ./cmd/shoal-bench -only replay -replay.outage 2m
//	go run ./cmd/shoal-bench -only shoal -count 1 -profile
//	go run ./cmd/shoal-bench -scale 10k,100k,300k,1m -count 3 -plot docs/cost-curve.png
//	go run ./cmd/shoal-bench -plot.from .cache/bench/<time>/raw.txt -plot out.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/bench"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Exit codes: 0 done, 1 the benchmark failed, 2 bad flags or missing binaries.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "shoal-bench: %v\n", err)
		return exitUsage
	}
	if opts.plotFrom != "" {
		if err := replot(opts.plotFrom, opts.Plot, stdout); err != nil {
			fmt.Fprintf(stderr, "shoal-bench: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "PLOT %s\n", opts.Plot)
		return 0
	}
	cfg := opts.Config
	cfg.Stdout, cfg.Stderr = stdout, stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(cfg.Scale) > 0 {
		fmt.Fprintf(stdout, "shoal-bench %s: scale=%s least window=%v count=%d runs=%v plot=%s out=%s\n",
			time.Now().Format(time.RFC3339), scaleNames(cfg.Scale), cfg.Duration, cfg.Count, cfg.Runs, orNone(cfg.Plot), cfg.Out)
	} else {
		fmt.Fprintf(stdout, "shoal-bench %s: targets=%d series=%d interval=%v duration=%v count=%d runs=%v profile=%v out=%s\n",
			time.Now().Format(time.RFC3339), cfg.Targets, cfg.Series, cfg.Interval, cfg.Duration, cfg.Count, cfg.Runs, cfg.Profile, cfg.Out)
	}
	fmt.Fprintf(stdout, "binaries: shoal=%s prometheus=%s vmagent=%s\n", cfg.ShoalBin, cfg.PrometheusBin, orNone(cfg.VMAgentBin))
	if err := bench.Run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "shoal-bench: %v\n", err)
		return exitFailure
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func scaleNames(shapes []bench.Shape) string {
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = fmt.Sprintf("%s(%dx%d@%v)", s.Name, s.Targets, s.Series, s.Interval)
	}
	return strings.Join(names, ",")
}

// replot prints the cost curve of the SCALE lines in file from and draws
// it into a PNG file at to, titled with the file's date and this machine.
// It reads a run's raw.txt while the run goes on, too.
func replot(from, to string, stdout io.Writer) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	results, err := bench.ReadScaleResults(f)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	reps := 0
	for _, r := range results {
		reps = max(reps, r.Rep)
	}
	bench.WriteScaleReport(stdout, results, reps)
	return bench.WritePlot(to, results, fmt.Sprintf("%s, %s", fi.ModTime().UTC().Format(time.DateOnly), bench.Machine()))
}

// options are the command line: a benchmark, or a plot of an earlier one's
// output (plotFrom).
type options struct {
	bench.Config
	plotFrom string
}

// parseFlags turns the command line into options, finding the binaries.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return options{}, fmt.Errorf("run from inside the repository: %w", err)
	}
	fs := flag.NewFlagSet("shoal-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := bench.Config{RepoRoot: root}
	var only, vmagent, scale, plotFrom, candidateArgs string
	fs.IntVar(&cfg.Targets, "targets", bench.DefaultTargets, "targets of a single agent (the fleet scrapes 3 times as many)")
	fs.IntVar(&cfg.Series, "series", bench.DefaultSeries, "farm_series gauges per target")
	fs.DurationVar(&cfg.Interval, "interval", bench.DefaultInterval, "scrape interval")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "measured window of every run, after a warm-up of 2 intervals")
	fs.IntVar(&cfg.Count, "count", bench.DefaultCount, "repetitions; runs are interleaved within each")
	fs.StringVar(&only, "only", "", "comma-separated runs: shoal, candidate, prometheus, vmagent, fleet, replay, nonowned (default: shoal, prometheus, vmagent, fleet)")
	fs.StringVar(&cfg.Out, "out", "", "directory for raw lines, the report and profiles (default .cache/bench/<time>)")
	fs.BoolVar(&cfg.Profile, "profile", false, fmt.Sprintf("take a %ds CPU and a heap profile of a shoal agent and print the top functions", 30))
	fs.DurationVar(&cfg.ReplayOutage, "replay.outage", bench.DefaultReplayOutage, "how long the receiver is down in the replay run")
	fs.IntVar(&cfg.NonOwnedTargets, "nonowned.targets", bench.DefaultNonOwnedTargets, "targets registered by the nonowned run")
	fs.StringVar(&cfg.ShoalBin, "shoal", filepath.Join(root, "bin", "shoal"), "shoal binary (go build -o bin/shoal ./cmd/shoal)")
	fs.StringVar(&cfg.PrometheusBin, "prometheus", defaultPrometheus(root), "Prometheus 3.15 binary, the receiver and the agent-mode peer (hack/build-deps.sh prometheus)")
	fs.StringVar(&cfg.CandidateBin, "candidate", "", "shoal binary of the candidate run (-only ...,candidate,...): measured next to -shoal in every repetition, with ratios candidate/shoal and candidate/vmagent; default: -shoal")
	fs.StringVar(&candidateArgs, "candidate.args", "", "flags the candidate agent gets on top of the shoal run's, space-separated")
	fs.StringVar(&vmagent, "vmagent", "", "vmagent binary; default: vmagent in $PATH, and the run is skipped if there is none")
	fs.StringVar(&scale, "scale", "", "run the cost curve at these sizes instead: "+strings.Join(shapeNames(), ",")+" or TARGETSxSERIES@INTERVAL; runs shoal, prometheus, vmagent one at a time")
	fs.StringVar(&cfg.Plot, "plot", "", "with -scale or -plot.from: draw the cost curve into this PNG file")
	fs.StringVar(&plotFrom, "plot.from", "", "print the cost curve of the SCALE lines of an earlier (or running) run's raw.txt and draw -plot, running nothing")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if plotFrom != "" {
		if cfg.Plot == "" {
			return options{}, errors.New("-plot.from needs -plot, the PNG file to write")
		}
		return options{Config: cfg, plotFrom: plotFrom}, nil
	}
	if cfg.Scale, err = bench.ParseScale(scale); err != nil {
		return options{}, fmt.Errorf("-scale: %w", err)
	}
	if len(cfg.Scale) > 0 && strings.TrimSpace(only) == "" {
		cfg.Runs = slices.Clone(bench.ScaleRuns)
	} else if cfg.Runs, err = bench.ParseRuns(only); err != nil {
		return options{}, fmt.Errorf("-only: %w", err)
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(root, ".cache", "bench", time.Now().Format("20060102-150405"))
	}
	if err := executable(cfg.ShoalBin); err != nil {
		return options{}, fmt.Errorf("-shoal: %w (build it: go build -o bin/shoal ./cmd/shoal)", err)
	}
	cfg.CandidateArgs = strings.Fields(candidateArgs)
	if slices.Contains(cfg.Runs, bench.RunCandidate) {
		if cfg.CandidateBin == "" {
			cfg.CandidateBin = cfg.ShoalBin
		}
		if err := executable(cfg.CandidateBin); err != nil {
			return options{}, fmt.Errorf("-candidate: %w", err)
		}
	} else if cfg.CandidateBin != "" || len(cfg.CandidateArgs) > 0 {
		return options{}, errors.New("-candidate and -candidate.args need the candidate run (-only shoal,candidate)")
	}
	if err := executable(cfg.PrometheusBin); err != nil {
		return options{}, fmt.Errorf("-prometheus: %w (build it: hack/build-deps.sh prometheus)", err)
	}
	switch {
	case vmagent != "":
		if err := executable(vmagent); err != nil {
			return options{}, fmt.Errorf("-vmagent: %w", err)
		}
		cfg.VMAgentBin = vmagent
	default:
		cfg.VMAgentBin, _ = exec.LookPath("vmagent") // none: the run says it is skipped
	}
	cfg.GoBin, _ = exec.LookPath("go") // none: no profile, heap without forced GC
	if err := cfg.Validate(); err != nil {
		return options{}, err
	}
	return options{Config: cfg}, nil
}

// defaultPrometheus is $SHOAL_PROMETHEUS_BIN, as for the tests, or the
// one hack/build-deps.sh builds.
func defaultPrometheus(root string) string {
	if p := os.Getenv(testenv.EnvPrometheusBin); p != "" {
		return p
	}
	return filepath.Join(root, ".cache", "bin", "prometheus")
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func shapeNames() []string {
	names := make([]string, len(bench.ScaleShapes))
	for i, s := range bench.ScaleShapes {
		names[i] = s.Name
	}
	return names
}

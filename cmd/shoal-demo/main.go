// Command shoal-demo runs a shoal demo fleet on this machine's loopback
// interface, from local binaries (no containers, no registry), on the
// harness of the end-to-end tests (internal/testenv, internal/e2e):
//
//	consul      dev agent; the agents find each other and the targets in it
//	farm        30 synthetic targets (internal/farm), 3 failing their Consul
//	            health check, registered as service "farm"
//	receiver    Prometheus with --web.enable-remote-write-receiver, scraping
//	            the agents' own /metrics (job shoal)
//	shoal-1..3  agents joining via consul+shoal, registered as "shoal",
//	            scraping the farm every 5s and remote writing to the receiver
//
// It prints the pages to open and, every DEMO_REFRESH seconds (10), who
// scrapes what. Ctrl-C stops everything, agents first so that they hand over
// and flush. Logs, configurations and data are in .cache/demo/, wiped at
// each start.
//
// DEMO_DURATION=N stops after N seconds and exits 1 unless the demo worked:
// every agent ready, all of them agreeing on one cluster, every healthy
// target scraped by exactly one agent, and every healthy target's up series
// at the receiver. Ports: DEMO_PORT_BASE (19000) + 0 to 99. `make demo` builds
// Consul and Prometheus first (hack/build-deps.sh) and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, out io.Writer) int {
	cfg, err := parse(args, out)
	if err != nil {
		fmt.Fprintf(out, "demo: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, cfg); err != nil {
		fmt.Fprintf(out, "demo: FAIL: %v\n", err)
		return 1
	}
	return 0
}

// parse reads the flags and their DEMO_* environment twins.
func parse(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("shoal-demo", flag.ContinueOnError)
	fs.SetOutput(out)
	c := config{out: out}
	fs.StringVar(&c.shoalBin, "shoal", "", "shoal binary; empty builds ./cmd/shoal")
	fs.StringVar(&c.dir, "dir", ".cache/demo", "directory for logs, configurations and data, wiped at start")
	durations := []struct {
		name, env string
		dst       *time.Duration
		def       time.Duration
		min       time.Duration
		usage     string
	}{
		{"duration", "DEMO_DURATION", &c.duration, 0, 0, "stop after this long and check that the demo worked; 0 runs until Ctrl-C"},
		{"refresh", "DEMO_REFRESH", &c.refresh, 10 * time.Second, time.Second, "how often the summary is printed"},
	}
	ints := []struct {
		name, env string
		dst       *int
		def       int
		lo, hi    int
		usage     string
	}{
		{"targets", "DEMO_TARGETS", &c.targets, 30, 1, maxTargets, "farm targets"},
		{"unhealthy", "DEMO_UNHEALTHY", &c.unhealthy, 3, 0, maxTargets - 1, "farm targets failing their health check"},
		{"port-base", "DEMO_PORT_BASE", &c.portBase, 19000, 1024, 65535 - portSpan, "first of the 100 loopback ports the demo uses"},
	}
	for _, d := range durations {
		fs.DurationVar(d.dst, d.name, d.def, d.usage+" ($"+d.env+", in seconds)")
	}
	for _, i := range ints {
		fs.IntVar(i.dst, i.name, i.def, i.usage+" ($"+i.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, d := range durations {
		if v, ok := os.LookupEnv(d.env); ok && !set[d.name] {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return c, fmt.Errorf("%s must be a whole number of seconds, got %q", d.env, v)
			}
			*d.dst = time.Duration(n) * time.Second
		}
		if *d.dst != 0 && *d.dst < d.min {
			return c, fmt.Errorf("%s must be at least %v, got %v", d.env, d.min, *d.dst)
		}
	}
	for _, i := range ints {
		if v, ok := os.LookupEnv(i.env); ok && !set[i.name] {
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("%s must be a whole number, got %q", i.env, v)
			}
			*i.dst = n
		}
		if *i.dst < i.lo || *i.dst > i.hi {
			return c, fmt.Errorf("%s must be between %d and %d, got %d", i.env, i.lo, i.hi, *i.dst)
		}
	}
	if c.unhealthy >= c.targets {
		return c, fmt.Errorf("DEMO_UNHEALTHY must be below DEMO_TARGETS (%d), got %d", c.targets, c.unhealthy)
	}
	return c, nil
}

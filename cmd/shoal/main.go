// Command shoal is a clustered Prometheus scrape agent: every agent gossips
// with its peers, places every discovered target on a hash ring of the live
// agents, scrapes the ones it owns and ships them by remote write.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/promslog"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/internal/goruntime"
	"github.com/shoal-dev/shoal/internal/redact"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0".
var version = "0.1.0-dev"

// Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or config.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("shoal", "A clustered Prometheus scrape agent: agents share the targets through a hash ring of live members and ship samples by remote write.")
	app.Version(version)
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	terminated := false
	app.Terminate(func(int) { terminated = true })

	hostname, _ := os.Hostname()
	o := agent.DefaultOptions(hostname)
	rt := goruntime.DefaultConfig()
	flags := newFlags(app, &o, &rt)

	checkCmd := app.Command("check", "Check resources for validity.")
	checkConfig := checkCmd.Command("config", "Check that a configuration file is valid (exit 0) or print the error (exit 1).")
	// A plain string: a missing file is a failed check (exit 1) like any
	// other unloadable file, not a usage error.
	checkFile := checkConfig.Arg("file", "Configuration file to check.").Required().String()
	runCmd := app.Command("run", "Run the agent (default).").Default()

	cmd, err := app.Parse(args)
	if terminated { // --help or --version was printed
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "shoal: error: %s, try --help\n", err)
		return exitUsage
	}
	if cmd == checkConfig.FullCommand() {
		cfg, err := agent.LoadFile(*checkFile, nil)
		if err == nil {
			// The --scrape.default-* flags given to check are the ones used.
			err = cfg.ApplyDefaultLimits(o.Scrape.DefaultLimits)
		}
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "FAILED: %s\n", err)
			return exitFailure
		}
		for _, w := range append(cfg.Warnings(), cfg.LimitWarnings()...) {
			_, _ = fmt.Fprintf(stderr, "WARNING: %s\n", w)
		}
		_, _ = fmt.Fprintf(stdout, "SUCCESS: %s is valid shoal (Prometheus agent) configuration\n", *checkFile)
		return 0
	}
	_ = runCmd

	logger, err := flags.logger(stderr)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "shoal: error: %s\n", err)
		return exitUsage
	}
	o.Version = version
	if err := rt.Validate(); err != nil {
		_, _ = fmt.Fprintf(stderr, "shoal: error: %s\n", err)
		return exitUsage
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a, err := agent.New(o, logger, reg)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "shoal: error: %s\n", err)
		if agent.IsUsageError(err) {
			return exitUsage
		}
		return exitFailure
	}

	// Before the agent scrapes, as Prometheus does; GOGC comes with the
	// config file (runtime.gogc), on every load.
	rt.Apply(logger)

	// Every SIGINT or SIGTERM is a stop request: the first starts the stop
	// sequence, each later one cuts its current stage short. SIGHUP reloads.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s != syscall.SIGHUP {
					logger.Info("received signal", "signal", s)
					a.Quit()
				} else if err := a.Reload(); err != nil {
					logger.Error("SIGHUP reload failed", "err", err)
				}
			case <-done:
				return
			}
		}
	}()

	logger.Info("starting shoal", "version", version, "node", o.Gossip.Name, "config", o.ConfigFile)
	if err := a.Run(context.Background()); err != nil {
		logger.Error("shoal stopped", "err", err)
		return exitFailure
	}
	return 0
}

// logFlags hold the logger settings until the logger is built.
type logFlags struct {
	level, format string
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	lvl := promslog.NewLevel()
	if err := lvl.Set(l.level); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	f := promslog.NewFormat()
	if err := f.Set(l.format); err != nil {
		return nil, fmt.Errorf("--log.format: %w", err)
	}
	// Passwords of URLs are masked in every line, from shoal or from the
	// Prometheus packages; slog.SetDefault routes the standard library's log
	// package (net/http's server errors) through it too.
	logger := redact.Logger(promslog.New(&promslog.Config{Level: lvl, Format: f, Writer: w}))
	slog.SetDefault(logger)
	return logger, nil
}

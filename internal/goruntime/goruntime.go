// Package goruntime sets the Go runtime's memory settings the way
// Prometheus 3 does: GOMEMLIMIT from the container's memory limit
// (--auto-gomemlimit, github.com/KimMachineGun/automemlimit) and GOGC from
// the config file's runtime.gogc (shoal's agent.DefaultGoGC, 40, unless
// the file or $GOGC says otherwise; Prometheus' is 75).
package goruntime

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/internal/flagext"
)

// DefaultMemLimitRatio is Prometheus' --auto-gomemlimit.ratio: the Go heap
// may use 90 % of the container's limit, leaving the rest for what the
// runtime does not count (the binary's pages, thread stacks, page cache of
// the queue files) before the kernel's OOM killer acts.
const DefaultMemLimitRatio = 0.9

// Config is the --auto-gomemlimit flags.
type Config struct {
	// AutoMemLimit sets GOMEMLIMIT to MemLimitRatio of the cgroup's memory
	// limit, or of the machine's memory when there is no cgroup limit.
	AutoMemLimit  bool
	MemLimitRatio float64
	// provider finds the limit; nil is the cgroup with the machine's
	// memory as a fallback, as in Prometheus. Tests replace it.
	provider memlimit.Provider
}

// DefaultConfig is Prometheus' default: on, 0.9.
func DefaultConfig() Config {
	return Config{AutoMemLimit: true, MemLimitRatio: DefaultMemLimitRatio}
}

// RegisterFlags declares --auto-gomemlimit and --auto-gomemlimit.ratio,
// Prometheus' names.
func (c *Config) RegisterFlags(app *kingpin.Application) {
	flagext.Bool(app, "auto-gomemlimit", "Set GOMEMLIMIT to --auto-gomemlimit.ratio of the container's (cgroup) memory limit, or of the machine's memory without one, so that the garbage collector works harder before the process reaches the limit. An explicit $GOMEMLIMIT wins.", &c.AutoMemLimit)
	flagext.Float(app, "auto-gomemlimit.ratio", "Share of the detected memory limit given to GOMEMLIMIT, above 0 and at most 1.", &c.MemLimitRatio)
}

// Validate checks the ratio.
func (c Config) Validate() error {
	if !(c.MemLimitRatio > 0 && c.MemLimitRatio <= 1) {
		return fmt.Errorf("--auto-gomemlimit.ratio must be above 0 and at most 1, got %v", c.MemLimitRatio)
	}
	return nil
}

// Apply sets GOMEMLIMIT when AutoMemLimit is on and a limit is found (not
// when $GOMEMLIMIT is set), and returns the limit set, 0 if none. A limit
// that cannot be read is logged and leaves the runtime as it was. Apply
// starts nothing: the limit is read once, at start.
func (c Config) Apply(logger *slog.Logger) int64 {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !c.AutoMemLimit {
		return 0
	}
	p := c.provider
	if p == nil {
		p = memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)
	}
	limit, err := memlimit.SetGoMemLimitWithOpts(
		memlimit.WithRatio(c.MemLimitRatio),
		memlimit.WithProvider(p),
	)
	if err != nil {
		logger.Warn("cannot set GOMEMLIMIT from the memory limit, leaving it as it is", "err", err)
		return 0
	}
	if limit > 0 {
		logger.Info("set GOMEMLIMIT from the memory limit", "gomemlimit_bytes", limit, "ratio", c.MemLimitRatio)
	}
	return limit
}

// SetGCPercent sets GOGC to percent (negative: off), as Prometheus does
// for runtime.gogc on every config load, and logs a change. Unlike
// Prometheus it leaves $GOGC alone: Prometheus' config package takes an
// unset runtime.gogc from $GOGC, so exporting it would make a value
// removed from the file outlive the reload.
func SetGCPercent(percent int, logger *slog.Logger) {
	if old := debug.SetGCPercent(percent); old != percent && logger != nil {
		logger.Info("updated GOGC", "old", old, "new", percent)
	}
}

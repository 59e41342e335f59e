package scrape

import (
	"fmt"

	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/internal/flagext"
)

// Config is the scrape settings that come from flags.
type Config struct {
	// ReplicaLabel, when set, is added with the node name to every owned
	// target, for HA-deduplicating backends.
	ReplicaLabel string
	// DefaultLimits are the limits of jobs that set none of their own.
	DefaultLimits Limits
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{DefaultLimits: Limits{BodySize: DefaultBodySizeLimit, Samples: DefaultSampleLimit}}
}

// RegisterFlags declares --cluster.replica-label and --scrape.default-*.
func (c *Config) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "cluster.replica-label", "With a replication factor above 1: label set to the agent's name on every target, for HA-deduplicating backends (e.g. replica; names starting with __ are dropped by Prometheus). Empty: none.", &c.ReplicaLabel)
	flagext.Bytes(app, "scrape.default-body-size-limit", "body_size_limit of every scrape job that sets none, in the job or in global (an explicit 0 there means no limit): a larger uncompressed response fails the scrape instead of exhausting memory. 0: no default.", &c.DefaultLimits.BodySize)
	flagext.Uint(app, "scrape.default-sample-limit", "sample_limit of every scrape job that sets none, in the job or in global (an explicit 0 there means no limit): a scrape with more samples after metric relabeling fails. 0: no default.", &c.DefaultLimits.Samples)
}

// Validate checks the label name and the limits; messages name the flag.
func (c Config) Validate() error {
	if err := validateReplicaLabel(c.ReplicaLabel, "-"); err != nil {
		return fmt.Errorf("--cluster.replica-label: %w", err)
	}
	if b := c.DefaultLimits.BodySize; b < 0 || b > 0 && b < MinBodySizeLimit {
		return fmt.Errorf("--scrape.default-body-size-limit must be 0 (no default) or at least %s, got %s", MinBodySizeLimit, b)
	}
	return nil
}

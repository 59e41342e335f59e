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
}

// RegisterFlags declares --cluster.replica-label.
func (c *Config) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "cluster.replica-label", "With a replication factor above 1: label set to the agent's name on every target, for HA-deduplicating backends (e.g. replica; names starting with __ are dropped by Prometheus). Empty: none.", &c.ReplicaLabel)
}

// Validate checks the label name; the message names the flag.
func (c Config) Validate() error {
	if err := validateReplicaLabel(c.ReplicaLabel, "-"); err != nil {
		return fmt.Errorf("--cluster.replica-label: %w", err)
	}
	return nil
}

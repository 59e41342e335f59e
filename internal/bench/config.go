package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Job is the job name of the one scrape config every run uses.
const Job = "farm"

// RunLabel is the external label that keeps each run's samples apart at
// the receiver; its value is "<run>-<repetition>".
const RunLabel = "run"

// ScrapeConfig is the Prometheus configuration every run loads: one job
// that discovers targets in Consul and keeps the passing ones, as in the
// demo and the end-to-end tests. shoal and Prometheus read the same file;
// vmagent gets it without remote_write and external_labels, which it takes
// as flags.
type ScrapeConfig struct {
	Interval   time.Duration
	ConsulAddr string
	Services   []string
	// RemoteWriteURL is the receiver's endpoint; empty leaves remote_write out.
	RemoteWriteURL string
	// ExternalLabels are global.external_labels; empty leaves them out.
	ExternalLabels map[string]string
}

// Render returns the configuration as YAML. The scrape timeout is the
// interval: Prometheus refuses a longer one and the default (10 s) is longer
// than the default interval of the benchmark.
func (c ScrapeConfig) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", testenv.PromDuration(c.Interval), testenv.PromDuration(c.Interval))
	if len(c.ExternalLabels) > 0 {
		b.WriteString("  external_labels:\n")
		for _, k := range slices.Sorted(maps.Keys(c.ExternalLabels)) {
			fmt.Fprintf(&b, "    %s: %q\n", k, c.ExternalLabels[k])
		}
	}
	services := make([]string, len(c.Services))
	for i, s := range c.Services {
		services[i] = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(&b, `scrape_configs:
  - job_name: %q
    consul_sd_configs:
      - server: %q
        services: [%s]
    relabel_configs:
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service_metadata_target]
        target_label: target
`, Job, c.ConsulAddr, strings.Join(services, ", "))
	if c.RemoteWriteURL != "" {
		fmt.Fprintf(&b, "remote_write:\n  - url: %q\n", c.RemoteWriteURL)
	}
	return b.String()
}

package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Defaults for PromConfig fields left at their zero value.
const (
	// DefaultScrapeInterval is short so that a window of ten intervals takes
	// 20 s, and long enough that a loaded 2-core machine keeps every scrape
	// on its tick.
	DefaultScrapeInterval = 2 * time.Second
	// DefaultJob is the job name of the farm's scrape config.
	DefaultJob = "farm"
	// DefaultSDRefresh is how often Consul SD re-runs its blocking queries
	// (Prometheus' default is 30 s); short so that health changes and
	// recoveries from a Consul outage show within a few intervals.
	DefaultSDRefresh = 5 * time.Second
	// DefaultBatchSendDeadline bounds how long remote write holds a partial
	// batch (Prometheus' default is 5 s); short so that samples reach the
	// receiver, and tests can analyze them, soon after they are scraped.
	DefaultBatchSendDeadline = time.Second
)

// AgentLabel is the external label every agent sets to its node name, so
// the receiver keeps each agent's samples of a target in their own series.
const AgentLabel = "e2e_agent"

// PromConfig is the Prometheus configuration file an agent runs: one job
// that discovers the farm's targets in Consul, keeps the passing ones, and
// remote write to the receiver.
type PromConfig struct {
	// ConsulAddr is the host:port of Consul's HTTP API. Required.
	ConsulAddr string
	// Service is the Consul service of the targets. Required.
	Service string
	// RemoteWriteURL is the receiver's remote-write endpoint. Required.
	RemoteWriteURL string
	// Job is the scrape job name; DefaultJob if empty.
	Job string
	// ScrapeInterval is the global scrape interval; DefaultScrapeInterval if
	// zero. The scrape timeout is half of it.
	ScrapeInterval time.Duration
	// SDRefresh is consul_sd_configs' refresh_interval; DefaultSDRefresh if zero.
	SDRefresh time.Duration
	// ExternalLabels are added to global.external_labels; StartAgent adds
	// AgentLabel.
	ExternalLabels map[string]string
	// ProtobufMessage is remote_write's protobuf_message; empty is
	// Prometheus' default, remote write 1.0 (prometheus.WriteRequest).
	ProtobufMessage string
	// Raw, when set, is written instead of the rendered configuration.
	Raw string
}

func (c PromConfig) withDefaults() PromConfig {
	if c.Job == "" {
		c.Job = DefaultJob
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = DefaultScrapeInterval
	}
	if c.SDRefresh == 0 {
		c.SDRefresh = DefaultSDRefresh
	}
	return c
}

// Interval returns the scrape interval the configuration runs with.
func (c PromConfig) Interval() time.Duration { return c.withDefaults().ScrapeInterval }

// Render returns the configuration as YAML.
func (c PromConfig) Render() string {
	if c.Raw != "" {
		return c.Raw
	}
	c = c.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", testenv.PromDuration(c.ScrapeInterval), testenv.PromDuration(c.ScrapeInterval/2))
	if len(c.ExternalLabels) > 0 {
		b.WriteString("  external_labels:\n")
		for _, k := range slices.Sorted(maps.Keys(c.ExternalLabels)) {
			fmt.Fprintf(&b, "    %s: %q\n", k, c.ExternalLabels[k])
		}
	}
	// Prometheus' Consul SD lists every instance whatever its health; the
	// keep rule drops the failing ones, which the ownership filter applies
	// too, so they are neither placed on the ring nor scraped.
	fmt.Fprintf(&b, `scrape_configs:
  - job_name: %q
    consul_sd_configs:
      - server: %q
        services: [%q]
        refresh_interval: %s
    relabel_configs:
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service_metadata_target]
        target_label: target
remote_write:
  - url: %q
    queue_config:
      batch_send_deadline: %s
`, c.Job, c.ConsulAddr, c.Service, c.SDRefresh, c.RemoteWriteURL, DefaultBatchSendDeadline)
	if c.ProtobufMessage != "" {
		fmt.Fprintf(&b, "    protobuf_message: %s\n", c.ProtobufMessage)
	}
	return b.String()
}

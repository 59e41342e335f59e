package testenv

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Defaults of PromConfig fields left at their zero value.
const (
	// DefaultScrapeInterval is short so that a window of ten intervals takes
	// 20 s, and long enough that a loaded 2-core machine keeps every scrape
	// on its tick.
	DefaultScrapeInterval = 2 * time.Second
	// DefaultJob is the job name of the scrape config.
	DefaultJob = "farm"
	// DefaultSDRefresh is how often Consul SD re-runs its blocking queries
	// (Prometheus' default is 30 s); short so that health changes and
	// recoveries from a Consul outage show within a few intervals.
	DefaultSDRefresh = 5 * time.Second
	// DefaultBatchSendDeadline bounds how long remote write holds a partial
	// batch (Prometheus' default is 5 s); below the scrape interval, so that
	// an old owner's last samples arrive before the new owner's first, and
	// tests can analyze samples soon after they are scraped.
	DefaultBatchSendDeadline = time.Second
)

// PromConfig is the one Prometheus configuration file the harness writes,
// for shoal agents, Prometheus agents, vmagent and the receiver: at most
// one job that discovers targets in Consul and keeps the passing ones, and
// remote write.
type PromConfig struct {
	// ScrapeInterval is the global scrape interval; DefaultScrapeInterval if
	// zero.
	ScrapeInterval time.Duration
	// ScrapeTimeout is the global scrape timeout; half the interval if zero.
	ScrapeTimeout time.Duration
	// ExternalLabels are global.external_labels; empty leaves them out.
	ExternalLabels map[string]string
	// ConsulAddr is the host:port of Consul's HTTP API; empty leaves the
	// scrape config out.
	ConsulAddr string
	// ConsulToken is consul_sd_configs' ACL token; none if empty.
	ConsulToken string
	// ConsulDatacenter is consul_sd_configs' datacenter; when empty,
	// Prometheus asks the agent (which needs agent:read).
	ConsulDatacenter string
	// Services are the Consul services of the targets.
	Services []string
	// Job is the scrape job name; DefaultJob if empty.
	Job string
	// SDRefresh is consul_sd_configs' refresh_interval; DefaultSDRefresh if zero.
	SDRefresh time.Duration
	// RemoteWriteURL is the receiver's remote-write endpoint; empty leaves
	// remote_write out.
	RemoteWriteURL string
	// BatchSendDeadline is remote_write's queue_config.batch_send_deadline;
	// DefaultBatchSendDeadline if zero.
	BatchSendDeadline time.Duration
	// ProtobufMessage is remote_write's protobuf_message; empty is
	// Prometheus' default, remote write 1.0 (prometheus.WriteRequest).
	ProtobufMessage string
	// OutOfOrderTimeWindow is storage.tsdb.out_of_order_time_window, for a
	// receiver; zero leaves it out (out-of-order samples are rejected).
	OutOfOrderTimeWindow time.Duration
	// Raw, when set, is written instead of the rendered configuration.
	Raw string
}

// WithDefaults returns the configuration with every zero field that has a
// default set to it.
func (c PromConfig) WithDefaults() PromConfig {
	if c.Job == "" {
		c.Job = DefaultJob
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = DefaultScrapeInterval
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = c.ScrapeInterval / 2
	}
	if c.SDRefresh == 0 {
		c.SDRefresh = DefaultSDRefresh
	}
	if c.BatchSendDeadline == 0 {
		c.BatchSendDeadline = DefaultBatchSendDeadline
	}
	return c
}

// Interval returns the scrape interval the configuration runs with.
func (c PromConfig) Interval() time.Duration { return c.WithDefaults().ScrapeInterval }

// Render returns the configuration as YAML.
func (c PromConfig) Render() string {
	if c.Raw != "" {
		return c.Raw
	}
	c = c.WithDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", PromDuration(c.ScrapeInterval), PromDuration(c.ScrapeTimeout))
	if len(c.ExternalLabels) > 0 {
		b.WriteString("  external_labels:\n")
		for _, k := range slices.Sorted(maps.Keys(c.ExternalLabels)) {
			fmt.Fprintf(&b, "    %s: %q\n", k, c.ExternalLabels[k])
		}
	}
	if c.OutOfOrderTimeWindow > 0 {
		fmt.Fprintf(&b, "storage:\n  tsdb:\n    out_of_order_time_window: %s\n", PromDuration(c.OutOfOrderTimeWindow))
	}
	if c.ConsulAddr != "" {
		services := make([]string, len(c.Services))
		for i, s := range c.Services {
			services[i] = fmt.Sprintf("%q", s)
		}
		// Prometheus' Consul SD lists every instance whatever its health; the
		// keep rule drops the failing ones, which the ownership filter applies
		// too, so they are neither placed on the ring nor scraped.
		token := ""
		if c.ConsulToken != "" {
			token = fmt.Sprintf("\n        token: %q", c.ConsulToken)
		}
		if c.ConsulDatacenter != "" {
			token += fmt.Sprintf("\n        datacenter: %q", c.ConsulDatacenter)
		}
		fmt.Fprintf(&b, `scrape_configs:
  - job_name: %q
    consul_sd_configs:
      - server: %q
        services: [%s]
        refresh_interval: %s%s
    relabel_configs:
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service_metadata_target]
        target_label: target
`, c.Job, c.ConsulAddr, strings.Join(services, ", "), PromDuration(c.SDRefresh), token)
	}
	if c.RemoteWriteURL != "" {
		fmt.Fprintf(&b, "remote_write:\n  - url: %q\n    queue_config:\n      batch_send_deadline: %s\n", c.RemoteWriteURL, PromDuration(c.BatchSendDeadline))
		if c.ProtobufMessage != "" {
			fmt.Fprintf(&b, "    protobuf_message: %s\n", c.ProtobufMessage)
		}
	}
	return b.String()
}

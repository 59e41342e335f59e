package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScrapeConfigRender(t *testing.T) {
	c := ScrapeConfig{
		Interval:       5 * time.Second,
		ConsulAddr:     "127.0.0.1:8500",
		Services:       []string{"bench", "more"},
		RemoteWriteURL: "http://127.0.0.1:9090/api/v1/write",
		ExternalLabels: map[string]string{"run": "shoal-1", "a": "b"},
	}
	require.Equal(t, `global:
  scrape_interval: 5s
  scrape_timeout: 5s
  external_labels:
    a: "b"
    run: "shoal-1"
scrape_configs:
  - job_name: "farm"
    consul_sd_configs:
      - server: "127.0.0.1:8500"
        services: ["bench", "more"]
    relabel_configs:
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service_metadata_target]
        target_label: target
remote_write:
  - url: "http://127.0.0.1:9090/api/v1/write"
`, c.Render())

	// vmagent's file: no remote_write, no external labels.
	c.RemoteWriteURL, c.ExternalLabels, c.Interval = "", nil, 2500*time.Millisecond
	out := c.Render()
	require.NotContains(t, out, "remote_write")
	require.NotContains(t, out, "external_labels")
	require.Contains(t, out, "scrape_interval: 2500ms\n")
}

package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPromConfigRender(t *testing.T) {
	c := PromConfig{
		ScrapeInterval:    5 * time.Second,
		ScrapeTimeout:     5 * time.Second,
		ConsulAddr:        "127.0.0.1:8500",
		Services:          []string{"bench", "more"},
		SDRefresh:         30 * time.Second,
		RemoteWriteURL:    "http://127.0.0.1:9090/api/v1/write",
		BatchSendDeadline: 5 * time.Second,
		ExternalLabels:    map[string]string{"run": "shoal-1", "a": "b"},
	}
	// The golden file is a complete agent configuration: every field set.
	golden, err := os.ReadFile(filepath.Join("testdata", "promconfig.golden.yml"))
	require.NoError(t, err)
	require.Equal(t, string(golden), c.Render())

	// vmagent's file: no remote_write, no external labels.
	c.RemoteWriteURL, c.ExternalLabels, c.ScrapeInterval, c.ScrapeTimeout = "", nil, 2500*time.Millisecond, 0
	out := c.Render()
	require.NotContains(t, out, "remote_write")
	require.NotContains(t, out, "external_labels")
	require.Contains(t, out, "scrape_interval: 2500ms\n  scrape_timeout: 1250ms\n")

	// The defaults, and a receiver's file.
	d := PromConfig{ConsulAddr: "c:8500", Services: []string{"farm"}, RemoteWriteURL: "http://r/api/v1/write", ProtobufMessage: "io.prometheus.write.v2.Request"}.Render()
	require.Contains(t, d, "scrape_interval: 2s\n  scrape_timeout: 1s\n")
	require.Contains(t, d, "refresh_interval: 5s\n")
	require.Contains(t, d, "batch_send_deadline: 1s\n    protobuf_message: io.prometheus.write.v2.Request\n")
	require.Equal(t, "global:\n  scrape_interval: 2s\n  scrape_timeout: 1s\nstorage:\n  tsdb:\n    out_of_order_time_window: 600s\n",
		PromConfig{OutOfOrderTimeWindow: 10 * time.Minute}.Render())
	require.Equal(t, "x", PromConfig{Raw: "x"}.Render())
}

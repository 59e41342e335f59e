package agent

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "global:\n  scrape_interval: 1s\n")

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		opts := agentOptions(t, "ops-ready", cfg)
		opts.Storage.MaxSize = 64 << 20
		opts.Gossip.ReplicationFactor = 2
		a := startAgent(t, opts)
		a.waitReady()
		require.Equal(t, 1.0, a.metric("shoal_ready"))
		require.Equal(t, float64(64<<20), a.metric("shoal_storage_max_size_bytes"))
		require.Equal(t, 2.0, a.metric("shoal_cluster_replication_factor"))
	})

	t.Run("waiting for peers", func(t *testing.T) {
		t.Parallel()
		// An agent waiting for a second member serves /metrics but is not
		// ready: the gauge says so, as /-/ready does.
		opts := agentOptions(t, "ops-waiting", cfg)
		opts.Gossip.WaitForSize = 2
		a := startAgent(t, opts)
		require.Eventually(t, func() bool { return a.metric("shoal_ready") == 0 }, startTimeout, pollInterval)
		code, _ := a.get("/-/ready")
		require.Equal(t, 503, code)
	})
}

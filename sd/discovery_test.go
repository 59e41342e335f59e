package sd

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/stretchr/testify/require"
)

func TestDiscoveryStaticConfigs(t *testing.T) {
	cfg, err := config.Load(`
scrape_configs:
  - job_name: static
    static_configs:
      - targets: [a:80, b:80]
        labels: {env: test}
  - job_name: consul
    consul_sd_configs:
      - server: 127.0.0.1:1
        services: [web]
`, nil)
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	d, err := New(nil, reg)
	require.NoError(t, err)
	require.NoError(t, d.ApplyConfig(cfg), "recorded before Run")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	var got map[string][]*targetgroup.Group
	require.Eventually(t, func() bool {
		select {
		case got = <-d.SyncCh():
			return len(got["static"]) == 1
		case <-time.After(100 * time.Millisecond):
			// Prometheus sends without blocking: a receiver must be waiting.
			return false
		}
	}, 10*time.Second, 10*time.Millisecond)
	g := got["static"][0]
	require.Equal(t, model.LabelSet{"env": "test"}, g.Labels)
	require.ElementsMatch(t, []model.LabelSet{{model.AddressLabel: "a:80"}, {model.AddressLabel: "b:80"}}, g.Targets)

	// Discovery metrics go to the injected registry.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	require.True(t, names["prometheus_sd_discovered_targets"], "manager metrics registered")
	require.True(t, names["prometheus_sd_consul_rpc_failures_total"] || names["prometheus_sd_refresh_failures_total"] || names["prometheus_sd_consul_rpc_duration_seconds"], "mechanism metrics registered")

	cancel()
	require.NoError(t, <-done)
	_, open := <-d.SyncCh()
	require.False(t, open, "SyncCh closes when Run returns")
	require.Error(t, d.Run(context.Background()), "Run works once")
}

func TestDiscoveryApplyConfigWhileRunning(t *testing.T) {
	d, err := New(nil, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	cfg, err := config.Load("scrape_configs: [{job_name: late, static_configs: [{targets: [c:80]}]}]", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		// Run may not have started yet; applying again is harmless.
		require.NoError(t, d.ApplyConfig(cfg))
		select {
		case got := <-d.SyncCh():
			return len(got["late"]) == 1
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 10*time.Second, time.Millisecond)
}

func TestNewDiscoveryDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(nil, reg)
	require.NoError(t, err)
	_, err = New(nil, reg)
	require.ErrorContains(t, err, "register service discovery metrics")
}

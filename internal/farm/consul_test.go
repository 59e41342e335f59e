package farm

import (
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// healthByID maps the service's instance IDs to their aggregated check status.
// It returns nil when Consul does not answer. It runs inside
// require.Eventually's goroutine, so it must not call require.
func healthByID(client *api.Client, service string) map[string]string {
	entries, _, err := client.Health().Service(service, "", false, nil)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Service.ID] = e.Checks.AggregatedStatus()
	}
	return out
}

func TestRegisterWithConsul(t *testing.T) {
	testenv.SkipWithout(t, testenv.ConsulBinary)
	c := testenv.StartConsul(t)
	client := c.Client()
	f := startFarm(t, Config{Targets: 3, Unhealthy: 1, Service: "farm-test", Tags: []string{"a", "b"}})
	require.NoError(t, f.Register(t.Context(), client))

	// Registration sets the initial status, so no check has to run first.
	want := map[string]string{
		"farm-test-0": api.HealthPassing,
		"farm-test-1": api.HealthPassing,
		"farm-test-2": api.HealthCritical,
	}
	require.Eventually(t, func() bool {
		return len(healthByID(client, "farm-test")) == 3
	}, 30*time.Second, 50*time.Millisecond)
	entries, _, err := client.Health().Service("farm-test", "", false, nil)
	require.NoError(t, err)
	for _, e := range entries {
		i, err := strconv.Atoi(e.Service.ID[len("farm-test-"):])
		require.NoError(t, err)
		tg := f.Targets()[i]
		require.Equal(t, "127.0.0.1", e.Service.Address)
		require.Equal(t, tg.Addr, "127.0.0.1:"+strconv.Itoa(e.Service.Port))
		require.Equal(t, tg.ID, e.Service.Meta[MetaTarget])
		require.ElementsMatch(t, []string{"a", "b"}, e.Service.Tags)
	}
	require.Equal(t, want, healthByID(client, "farm-test"))

	// The HTTP check follows /health within about a check interval.
	require.NoError(t, f.SetHealthy("target-0", false))
	require.NoError(t, f.SetHealthy("target-2", true))
	want["farm-test-0"], want["farm-test-2"] = api.HealthCritical, api.HealthPassing
	require.Eventually(t, func() bool {
		got := healthByID(client, "farm-test")
		return got["farm-test-0"] == want["farm-test-0"] && got["farm-test-2"] == want["farm-test-2"]
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, f.Deregister(t.Context(), client))
	require.Eventually(t, func() bool {
		return len(healthByID(client, "farm-test")) == 0
	}, 30*time.Second, 50*time.Millisecond)

	// An advertised host (a container's network alias) is what Consul
	// registers and checks.
	g := startFarm(t, Config{Targets: 1, Service: "farm-adv", AdvertiseHost: "localhost"})
	require.NoError(t, g.Register(t.Context(), client))
	entries, _, err = client.Health().Service("farm-adv", "", false, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "localhost", entries[0].Service.Address)
	require.Equal(t, g.Targets()[0].Addr, "127.0.0.1:"+strconv.Itoa(entries[0].Service.Port))
	require.NoError(t, g.SetHealthy("target-0", false))
	require.Eventually(t, func() bool {
		return healthByID(client, "farm-adv")["farm-adv-0"] == api.HealthCritical
	}, 30*time.Second, 100*time.Millisecond, "the check did not reach the target through the advertised host")
	require.NoError(t, g.Deregister(t.Context(), client))
}

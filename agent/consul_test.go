package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
	"github.com/shoal-dev/shoal/sd"
)

// passing returns the passing instances of service, by service ID.
func passing(t *testing.T, c *api.Client, service string) map[string]*api.AgentService {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		return nil
	}
	out := map[string]*api.AgentService{}
	for _, e := range entries {
		out[e.Service.ID] = e.Service
	}
	return out
}

func TestConsulRegistrationAndJoin(t *testing.T) {
	t.Parallel()
	consul := testenv.StartConsul(t)
	client := consul.Client()
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"a": {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}}))

	start := func(name string) *testAgent {
		o := agentOptions(t, name, cfgPath)
		o.Consul.Address = consul.Addr
		o.Registration.Service = "shoal"
		o.Registration.Tags = []string{"test"}
		o.Join = []string{"consul+shoal"}
		return startAgent(t, o)
	}
	// Two agents start together: neither finds a passing peer at first.
	agents := []*testAgent{start("c-0"), start("c-1")}
	for _, a := range agents {
		a.waitReady()
	}
	require.Eventually(t, func() bool { return len(passing(t, client, "shoal")) == 2 }, convergeTimeout, pollInterval)
	svc := passing(t, client, "shoal")["c-0"]
	require.NotNil(t, svc)
	require.Equal(t, "shoal", svc.Service)
	require.Equal(t, agents[0].Node().Addr(), svc.Meta[sd.MetaGossipAddr])
	require.Equal(t, "test", svc.Meta[sd.MetaVersion])
	require.Equal(t, []string{"test"}, svc.Tags)
	require.Equal(t, agents[0].WebAddr(), fmt.Sprintf("%s:%d", svc.Address, svc.Port))
	waitAgreement(t, agents, 2)

	// A third agent started later is found through Consul.
	agents = append(agents, start("c-2"))
	agents[2].waitReady()
	waitAgreement(t, agents, 3)

	// A graceful stop deregisters at once.
	require.NoError(t, agents[2].stop())
	services, err := client.Agent().Services()
	require.NoError(t, err)
	require.NotContains(t, services, "c-2")
	waitAgreement(t, agents[:2], 2)
}

// TestConsulCrashedAgentExpires runs the agent's registration the way a
// crashed process leaves it: registered, then never renewed nor
// deregistered. Consul reaps it once critical for the deregister-after
// period; it enforces at least one minute and reaps every 30 s.
func TestConsulCrashedAgentExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Consul to reap a critical service (up to 100 s)")
	}
	t.Parallel()
	consul := testenv.StartConsul(t)
	client := consul.Client()
	cfgPath := writeConfig(t, staticConfig(map[string][]string{"a": {"127.0.0.1:1"}}))
	o := agentOptions(t, "crashed", cfgPath)
	o.Consul.Address = consul.Addr
	o.Registration.Service = "shoal"
	o.Registration.TTL = 2 * time.Second
	o.Registration.DeregisterCriticalServiceAfter = time.Second // Consul raises it to 1m
	a := newTestAgent(t, o)
	// Run would deregister on stop; a crash does not. Register and renew
	// once as Run does, then stop renewing.
	ctx := t.Context()
	require.NoError(t, a.regist.Register(ctx))
	require.Eventually(t, func() bool {
		status, _, err := client.Agent().AgentHealthServiceByID("crashed")
		return err == nil && status == api.HealthCritical
	}, convergeTimeout, pollInterval)
	a.closeStorage()
	began := time.Now()
	require.Eventually(t, func() bool {
		services, err := client.Agent().Services()
		return err == nil && services["crashed"] == nil
	}, 100*time.Second, time.Second, "consul did not reap the critical service")
	t.Logf("reaped after %v", time.Since(began).Round(time.Second))
}

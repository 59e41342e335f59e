package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// consulSyncTimeout bounds how long Consul may take to show the farm's
// registrations with their initial health.
const consulSyncTimeout = 60 * time.Second

// EnvOptions configures StartEnv.
type EnvOptions struct {
	// Targets is the number of farm targets, at least 1.
	Targets int
	// Unhealthy is how many of them fail their Consul check.
	Unhealthy int
	// Receiver configures the remote-write receiver.
	Receiver testenv.ReceiverOptions
}

// Env is what agents run against: a Consul agent in which the farm's targets
// are registered, the farm serving them, and a remote-write receiver.
type Env struct {
	Consul       *testenv.Consul
	ConsulClient *api.Client
	Receiver     *testenv.Receiver
	Farm         *farm.Farm

	holdConsul, holdReceiver func() // see StopConsul, StopReceiver
}

// StartEnv starts Consul, the receiver and the farm, registers the targets
// and waits until Consul lists them all with their initial health.
// t.Cleanup stops everything. It skips under -short or when a binary is
// missing (see testenv).
func StartEnv(tb testing.TB, opts EnvOptions) *Env {
	tb.Helper()
	Binary(tb) // skip or fail before starting anything else
	e := &Env{Consul: testenv.StartConsul(tb)}
	e.ConsulClient = e.Consul.Client()
	e.Receiver = testenv.StartReceiver(tb, opts.Receiver)

	f, err := farm.Start(tb.Context(), farm.Config{Targets: opts.Targets, Unhealthy: opts.Unhealthy})
	require.NoError(tb, err, "start farm")
	tb.Cleanup(func() { require.NoError(tb, f.Close()) })
	e.Farm = f
	require.NoError(tb, f.Register(tb.Context(), e.ConsulClient), "register farm targets in consul")
	tb.Cleanup(func() {
		if tb.Failed() {
			e.logConsulChecks(tb)
		}
	})

	want := opts.Targets - opts.Unhealthy
	require.Eventually(tb, func() bool {
		entries, _, err := e.ConsulClient.Health().Service(farm.DefaultService, "", true, nil)
		return err == nil && len(entries) == want
	}, consulSyncTimeout, 100*time.Millisecond, "consul never listed %d passing farm targets", want)
	return e
}

// PromConfig returns an agent configuration scraping the farm's service and
// writing to the receiver, with the default scrape interval.
func (e *Env) PromConfig() PromConfig {
	return PromConfig{
		ConsulAddr:     e.Consul.Addr,
		Service:        farm.DefaultService,
		RemoteWriteURL: e.Receiver.RemoteWriteURL,
	}
}

// Instances returns the instance labels ("host:port") of the healthy or of
// the unhealthy targets, sorted.
func (e *Env) Instances(healthy bool) []string {
	var out []string
	for _, t := range e.Farm.Targets() {
		if t.Healthy == healthy {
			out = append(out, t.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// StartCluster starts n agents with the environment's configuration, one
// after another, each joining the ones started before it. Once all are
// ready, every agent's Opts.Join lists all the others, so a restarted agent
// rejoins whichever are up. Names are "<prefix>-<i>"; modify sets further
// options per agent (it may be nil).
func (e *Env) StartCluster(tb testing.TB, n int, prefix string, modify func(i int, o *AgentOptions)) []*Agent {
	tb.Helper()
	agents := make([]*Agent, n)
	for i := range agents {
		o := AgentOptions{Name: fmt.Sprintf("%s-%d", prefix, i), Config: e.PromConfig()}
		for _, prev := range agents[:i] {
			o.Join = append(o.Join, prev.GossipAddr)
		}
		if modify != nil {
			modify(i, &o)
		}
		agents[i] = StartAgent(tb, o)
	}
	for _, a := range agents {
		a.Opts.Join = a.Opts.Join[:0]
		for _, b := range agents {
			if b != a {
				a.Opts.Join = append(a.Opts.Join, b.GossipAddr)
			}
		}
	}
	return agents
}

// logConsulChecks logs the farm checks Consul does not see passing, with
// their output, for a failed test.
func (e *Env) logConsulChecks(tb testing.TB) {
	entries, _, err := e.ConsulClient.Health().Service(farm.DefaultService, "", false, nil)
	if err != nil {
		tb.Logf("e2e: consul health of %s: %v", farm.DefaultService, err)
		return
	}
	for _, en := range entries {
		for _, c := range en.Checks {
			if c.Status != "passing" {
				tb.Logf("e2e: consul check %s of %s:%d is %s: %s", c.CheckID, en.Service.Address, en.Service.Port, c.Status, c.Output)
			}
		}
	}
}

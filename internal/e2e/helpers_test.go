package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// startEnv starts an environment for t, skipping it without the binaries.
func startEnv(t *testing.T, opts EnvOptions) *Env {
	t.Helper()
	SkipUnlessIntegration(t)
	env, err := StartEnv(t.Context(), testenv.ForTest(t), opts)
	require.NoError(t, err)
	return env
}

// testCluster is what most e2e tests start from: an environment of 30
// targets, 5 of them failing their check, and agents that have converged
// on the 25 healthy ones.
type testCluster struct {
	env     *Env
	healthy []string
	agents  []*Agent
	own     Ownership // at convergence
	at      time.Time // when they converged
	iv      time.Duration
}

// startConverged starts a testCluster of n agents named "<prefix>-<i>";
// modify, if not nil, sets further options per agent.
func startConverged(t *testing.T, n int, prefix string, modify func(env *Env, o *AgentOptions)) testCluster {
	t.Helper()
	c := testCluster{env: startEnv(t, EnvOptions{Targets: 30, Unhealthy: 5})}
	c.healthy = c.env.Instances(true)
	var err error
	c.agents, err = c.env.StartCluster(t.Context(), n, prefix, func(_ int, o *AgentOptions) {
		if modify != nil {
			modify(c.env, o)
		}
	})
	require.NoError(t, err)
	c.own, err = WaitConverged(t.Context(), c.agents, c.healthy)
	require.NoError(t, err)
	c.at = time.Now()
	c.iv = c.env.PromConfig().Interval()
	return c
}

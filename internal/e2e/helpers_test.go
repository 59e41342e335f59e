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
	_, err = WaitConverged(t.Context(), c.agents, c.healthy)
	require.NoError(t, err)
	// Under load-aware placement (the default) the leader may still move a
	// few targets once it has measured them: rendezvous puts 10 or more of 25
	// equal targets on one of 3 agents (above the bound, 9) in 82 % of
	// runs, 14 or more on one of 2 in 69 %. The tests measure from the
	// placement that then stays; TestPlanHandoff measures that plan.
	var settled Settling
	c.own, settled, err = WaitSettled(t.Context(), c.agents, c.healthy)
	require.NoError(t, err)
	t.Logf("placement settled: %s ownership=%q", settled, c.own.String())
	c.at = time.Now()
	c.iv = c.env.PromConfig().Interval()
	return c
}

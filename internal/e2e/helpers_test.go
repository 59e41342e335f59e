package e2e

import (
	"testing"

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

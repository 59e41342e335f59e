package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestRun runs a tiny benchmark against the real binaries: a shoal agent
// and a fleet, a few seconds each (about 40 s). The other peers' runs differ
// only in their command lines.
func TestRun(t *testing.T) {
	// Skip for a missing binary before building shoal.
	e2e.SkipUnlessIntegration(t)
	prom, err := testenv.PrometheusBinary.Find()
	require.NoError(t, err)
	shoal, err := e2e.Binary()
	require.NoError(t, err)
	goBin, _ := exec.LookPath("go")
	root, err := testenv.RepoRoot()
	require.NoError(t, err)

	var stdout, stderr bytes.Buffer
	cfg := Config{
		Targets: 3, Series: 10, Interval: time.Second, Duration: 3 * time.Second, Count: 1,
		Runs:            []string{RunShoal, RunFleet},
		NonOwnedTargets: DefaultNonOwnedTargets,
		Out:             t.TempDir(),
		ShoalBin:        shoal, PrometheusBin: prom, GoBin: goBin, RepoRoot: root,
		Stdout: &stdout, Stderr: &stderr,
	}
	err = Run(t.Context(), cfg)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.NoError(t, err)

	out := stdout.String()
	for _, run := range []string{RunShoal, RunFleet} {
		m := regexp.MustCompile(`(?m)^RAW run=` + run + ` rep=1 .* samples=(\d+) series=(\d+) .* completeness=([0-9.]+)$`).FindStringSubmatch(out)
		require.NotNil(t, m, "no raw line of %s", run)
		require.NotEqual(t, "0", m[1], "%s delivered no samples", run)
	}
	require.Contains(t, out, "RATIO cpu_s/Msample")
	require.Contains(t, out, "EFFICIENCY fleet per-agent CPU efficiency")
	raw, err := os.ReadFile(filepath.Join(cfg.Out, "raw.txt"))
	require.NoError(t, err)
	require.Equal(t, out, string(raw))
}

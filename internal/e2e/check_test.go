package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cliTimeout bounds one run of the binary that must exit at once.
const cliTimeout = 2 * time.Minute // generous: a loaded CI machine

// runShoal runs the binary with args and returns its exit code and output.
func runShoal(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	bin, err := Binary()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run shoal %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// TestCheckConfig runs `shoal check config` on broken files: each exits 1
// with one FAILED message that names the offending field; a good file exits
// 0. Bad flags make `shoal` exit 2 and name the flag.
func TestCheckConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: builds shoal, skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	good := PromConfig{
		ConsulAddr:     "127.0.0.1:8500",
		Services:       []string{"farm"},
		RemoteWriteURL: "http://127.0.0.1:9090/api/v1/write",
	}.Render()
	require.Contains(t, good, "scrape_interval: 2s\n")
	require.Contains(t, good, "refresh_interval: 5s\n")

	for _, tc := range []struct {
		name string
		yaml string
		code int
		want []string // fragments of stderr (FAILED) or stdout (SUCCESS)
	}{
		{"good", good, 0, []string{"SUCCESS"}},
		{"unknown field", strings.Replace(good, "global:\n", "global:\n  scrape_intervall: 3s\n", 1), 1,
			[]string{"scrape_intervall", "line 2"}},
		{"bad global duration", strings.Replace(good, "scrape_interval: 2s", "scrape_interval: 2x", 1), 1,
			[]string{"global.scrape_interval", `"2x"`}},
		{"bad job duration", strings.Replace(good, "refresh_interval: 5s", "refresh_interval: 5 s", 1), 1,
			[]string{"scrape_configs[0].consul_sd_configs[0].refresh_interval", `"5 s"`}},
		{"rule_files", good + "rule_files:\n  - alerts.yml\n", 1,
			[]string{"rule_files", "agent mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yml")
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o644))
			code, stdout, stderr := runShoal(t, "check", "config", path)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			t.Logf("E2E test=check_config case=%q exit=%d output=%q", tc.name, code, strings.TrimSpace(stdout+stderr))
			msg := stdout
			if tc.code != 0 {
				require.Empty(t, stdout)
				msg = stderr
				require.Equal(t, 1, strings.Count(stderr, "FAILED"), "one message: %s", stderr)
				require.True(t, strings.HasPrefix(stderr, "FAILED: "), stderr)
			}
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
		})
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--cluster.nodename=a"}, "--cluster.nodename"},
		{"bad flag value", []string{"--cluster.replication-factor=seven"}, `--cluster.replication-factor must be an integer, got "seven"`},
		{"bad duration flag", []string{"--cluster.handoff-timeout=soon"}, `--cluster.handoff-timeout`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runShoal(t, tc.args...)
			t.Logf("E2E test=bad_flag case=%q exit=%d output=%q", tc.name, code, strings.TrimSpace(stderr))
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			require.Contains(t, stderr, tc.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %s", stderr)
		})
	}
}

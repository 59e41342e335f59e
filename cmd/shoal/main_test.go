package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/internal/goruntime"
)

const goodConfig = `
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:9100"]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// runShoal calls run and returns its exit code and outputs.
func runShoal(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestEveryFlagHasAnEnvTwin(t *testing.T) {
	app := kingpin.New("shoal", "")
	o := agent.DefaultOptions("host")
	rt := goruntime.DefaultConfig()
	newFlags(app, &o, &rt)
	flags := app.Model().Flags
	require.NotEmpty(t, flags)
	seen := map[string]string{}
	for _, f := range flags {
		if strings.HasPrefix(f.Name, "help") || strings.HasPrefix(f.Name, "completion-") {
			continue // kingpin's own
		}
		t.Run(f.Name, func(t *testing.T) {
			want := "SHOAL_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(f.Name))
			require.Equal(t, want, f.Envar, "flag --%s", f.Name)
			require.NotContains(t, seen, f.Envar, "two flags share an environment variable")
			seen[f.Envar] = f.Name
			require.NotEmpty(t, f.Help)
		})
	}
}

// TestEnvTwinsAreRead checks that run reads the environment twins, not only
// that they are declared: a bad value in the environment fails like the flag.
func TestEnvTwinsAreRead(t *testing.T) {
	cfg := writeFile(t, "shoal.yml", goodConfig)
	t.Setenv("SHOAL_CONFIG_FILE", cfg)
	t.Setenv("SHOAL_STORAGE_PATH", t.TempDir())
	t.Setenv("SHOAL_CLUSTER_REPLICATION_FACTOR", "seven")
	code, _, stderr := runShoal()
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, `--cluster.replication-factor must be an integer, got "seven"`)

	t.Setenv("SHOAL_CLUSTER_REPLICATION_FACTOR", "1")
	t.Setenv("SHOAL_LOG_LEVEL", "loud")
	code, _, stderr = runShoal()
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, "--log.level")
}

func TestBadFlagValues(t *testing.T) {
	cfg := writeFile(t, "shoal.yml", goodConfig)
	base := map[string]string{
		"config.file":            cfg,
		"storage.path":           t.TempDir(),
		"web.listen-address":     "127.0.0.1:0",
		"cluster.listen-address": "127.0.0.1:0",
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"int", []string{"--cluster.replication-factor=x"}, `--cluster.replication-factor must be an integer, got "x"`},
		{"replication out of range", []string{"--cluster.replication-factor=7"}, "replication"},
		{"float", []string{"--cluster.weight=heavy"}, `--cluster.weight must be a number, got "heavy"`},
		{"duration", []string{"--cluster.probe-interval=soon"}, `--cluster.probe-interval must be a non-negative duration`},
		{"negative duration", []string{"--cluster.handoff-timeout=-1s"}, `--cluster.handoff-timeout must be a non-negative duration`},
		{"consul ttl", []string{"--consul.check-ttl=x"}, `--consul.check-ttl must be a non-negative duration`},
		{"bool", []string{"--web.enable-lifecycle=maybe"}, "maybe"},
		{"unknown flag", []string{"--cluster.nmae=x"}, "unknown long flag '--cluster.nmae'"},
		{"log level", []string{"--log.level=loud"}, "--log.level"},
		{"log format", []string{"--log.format=xml"}, "--log.format"},
		{"join spec", []string{"--cluster.join=peer-without-port"}, `--cluster.join "peer-without-port"`},
		{"consul join without consul", []string{"--cluster.join=consul+shoal"}, "needs --consul.address"},
		{"register without consul", []string{"--consul.register=shoal"}, "needs --consul.address"},
		{"missing config", []string{"--config.file=" + filepath.Join(t.TempDir(), "nope.yml")}, "read config file"},
		{"web address", []string{"--web.listen-address=nohost"}, "--web.listen-address"},
		{"web config", []string{"--web.config.file=" + filepath.Join(t.TempDir(), "web.yml")}, "--web.config.file"},
		{"consul ttl too short", []string{"--consul.check-ttl=2ns", "--consul.register=shoal", "--consul.address=127.0.0.1:1"}, "--consul.check-ttl must be at least 1s, got 2ns"},
		{"consul token file", []string{"--consul.token-file=" + filepath.Join(t.TempDir(), "token")}, "--consul.token-file: open"},
		{"empty consul token file", []string{"--consul.token-file=" + writeFile(t, "token", " \n")}, "is empty"},
		{"replica label", []string{"--cluster.replica-label=__replica"}, `--cluster.replica-label: replica label must not start with "__"`},
		{"weight zero", []string{"--cluster.weight=0"}, "--cluster.weight must be above 0"},
		{"key file", []string{"--cluster.secret-key-file=" + filepath.Join(t.TempDir(), "key")}, "--cluster.secret-key-file"},
		{"exposed gossip without a key", []string{"--cluster.listen-address=0.0.0.0:7946"}, `--cluster.listen-address "0.0.0.0:7946" is reachable from other hosts and gossip has no key`},
		{"advertised gossip without a key", []string{"--cluster.advertise-address=192.0.2.7:7946"}, "pass --cluster.insecure"},
		{"restart grace too long", []string{"--cluster.restart-grace=2h"}, "--cluster.restart-grace must be at most 30m0s"},
		{"body size limit without a unit", []string{"--scrape.default-body-size-limit=64"}, `--scrape.default-body-size-limit must be a size such as 64MB, 512KB or 0, got "64"`},
		{"body size limit too small", []string{"--scrape.default-body-size-limit=512B"}, "--scrape.default-body-size-limit must be 0 (no default) or at least 1KiB, got 512B"},
		{"memory limit ratio", []string{"--auto-gomemlimit.ratio=1.5"}, "--auto-gomemlimit.ratio must be above 0 and at most 1, got 1.5"},
		{"negative sample limit", []string{"--scrape.default-sample-limit=-1"}, `--scrape.default-sample-limit must be a non-negative integer, got "-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(tc.args)
			for name, v := range base {
				if !strings.HasPrefix(tc.args[0], "--"+name+"=") {
					args = append(args, "--"+name+"="+v)
				}
			}
			code, _, stderr := runShoal(args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Contains(t, stderr, tc.want)
			require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
		})
	}
}

// TestBadFlagsOpenNothing checks that an invalid flag is refused before the
// WAL directory is created or a port opened.
func TestBadFlagsOpenNothing(t *testing.T) {
	cfg := writeFile(t, "shoal.yml", goodConfig)
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := runShoal("--config.file="+cfg, "--storage.path="+data,
		"--web.listen-address=127.0.0.1:0", "--cluster.listen-address=127.0.0.1:0",
		"--web.config.file="+writeFile(t, "web.yml", "tls_server_config: {cert_file: nope}\n"))
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, "--web.config.file")
	require.NoDirExists(t, data, "the WAL must not be opened before the flags are checked")
}

func TestVersionAndHelp(t *testing.T) {
	code, stdout, stderr := runShoal("--version")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, version+"\n", stdout)

	for _, args := range [][]string{{"--help"}, {"-h"}, {"check", "config", "--help"}} {
		code, stdout, stderr = runShoal(args...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "usage: shoal", args)
	}
	code, stdout, _ = runShoal("--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "--cluster.join")
	require.Contains(t, stdout, "($SHOAL_CLUSTER_JOIN)")
}

// limitedConfig is goodConfig with scrape limits of its own.
const limitedConfig = `
global:
  scrape_interval: 15s
  body_size_limit: 10MB
  sample_limit: 5000
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:9100"]
`

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "good.yml", limitedConfig)
	code, stdout, stderr := runShoal("check", "config", good)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "SUCCESS: "+good)
	require.Empty(t, stderr)

	// Valid but risky: a warning on stderr, still a success.
	risky := writeFile(t, "risky.yml", limitedConfig+"remote_write:\n  - url: http://rcv/api/v1/write\n    queue_config: {batch_send_deadline: 20s}\n")
	code, stdout, stderr = runShoal("check", "config", risky)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "SUCCESS: "+risky)
	require.Contains(t, stderr, "WARNING: remote_write[0]")
	require.Contains(t, stderr, "batch_send_deadline 20s")

	bad := writeFile(t, "bad.yml", "scrape_configs:\n  - job_name: x\n    scrape_intervall: 1s\n")
	code, stdout, stderr = runShoal("check", "config", bad)
	require.Equal(t, exitFailure, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "FAILED: ")
	require.Contains(t, stderr, "scrape_intervall")

	agentOnly := writeFile(t, "rules.yml", "rule_files: [a.yml]\n")
	code, _, stderr = runShoal("check", "config", agentOnly)
	require.Equal(t, exitFailure, code)
	require.Contains(t, stderr, "rule_files")

	for _, tc := range []struct{ url, want string }{
		{`""`, "remote_write[0].url must not be empty"},
		{"rcv:9090/api/v1/write", `remote_write[0].url "rcv:9090/api/v1/write" must start with http:// or https://`},
		{"http://user:secret@:9090/w", `remote_write[0].url "http://user:xxxxx@:9090/w" must name a host`},
	} {
		badURL := writeFile(t, "url.yml", goodConfig+"remote_write:\n  - url: "+tc.url+"\n")
		code, _, stderr = runShoal("check", "config", badURL)
		require.Equal(t, exitFailure, code, tc.url)
		require.Contains(t, stderr, tc.want)
		require.NotContains(t, stderr, "secret")
	}

	missing := filepath.Join(t.TempDir(), "missing.yml")
	code, _, stderr = runShoal("check", "config", missing)
	require.Equal(t, exitFailure, code, "a missing file is a failed check, not a usage error")
	require.Contains(t, stderr, "FAILED: ")
	require.Contains(t, stderr, "missing.yml")

	code, _, stderr = runShoal("check", "config")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "file")
}

// TestCheckConfigLimits: check config warns, without failing, for every job
// that sets no limit of its own, and names the default that applies.
func TestCheckConfigLimits(t *testing.T) {
	const jobs = `
scrape_configs:
  - job_name: bare
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: own
    body_size_limit: 1MB
    sample_limit: 100
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: unlimited
    body_size_limit: 0
    sample_limit: 0
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: half
    sample_limit: 0
    static_configs: [{targets: ["127.0.0.1:9100"]}]
`
	file := writeFile(t, "limits.yml", jobs)
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"defaults", nil, []string{
			`WARNING: job "bare" sets no scrape limit of its own: shoal applies body_size_limit 64MiB (--scrape.default-body-size-limit) and sample_limit 200000 (--scrape.default-sample-limit)`,
			`WARNING: job "half" sets no scrape limit of its own: shoal applies body_size_limit 64MiB (--scrape.default-body-size-limit);`,
		}},
		{"flags", []string{"--scrape.default-body-size-limit=16MB", "--scrape.default-sample-limit=0"}, []string{
			`WARNING: job "bare" sets no scrape limit of its own: shoal applies body_size_limit 16MiB (--scrape.default-body-size-limit) and no sample_limit (--scrape.default-sample-limit is 0)`,
			`WARNING: job "half" sets no scrape limit of its own: shoal applies body_size_limit 16MiB (--scrape.default-body-size-limit);`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runShoal(append([]string{"check", "config", file}, tc.flags...)...)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "SUCCESS")
			require.Equal(t, len(tc.want), strings.Count(stderr, "WARNING: "), stderr)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
			require.NotContains(t, stderr, `"own"`)
			require.NotContains(t, stderr, `"unlimited"`)
		})
	}
}

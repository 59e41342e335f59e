package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
)

// loadCases are TestLoad's files and the error substrings each must give
// (all required; none means success).
var loadCases = []struct {
	name    string
	yaml    string
	wantErr []string
}{
	{
		name: "plain prometheus config",
		yaml: `
global:
  scrape_interval: 15s
  external_labels: {cluster: eu1}
scrape_configs:
  - job_name: node
    consul_sd_configs: [{server: "localhost:8500", services: [node]}]
    relabel_configs:
      - source_labels: [__meta_consul_node]
        target_label: node
  - job_name: static
    static_configs: [{targets: ["a:9100"]}]
    file_sd_configs: [{files: [targets/*.json]}]
remote_write:
  - url: http://localhost:9090/api/v1/write
`,
	},
	{
		name:    "unknown field",
		yaml:    "global:\n  scrape_intervall: 15s\n",
		wantErr: []string{"line 2", "unknown field global.scrape_intervall (line 2)"},
	},
	{
		name:    "bad duration names the field",
		yaml:    "scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n",
		wantErr: []string{"scrape_configs[0].scrape_interval (line 3)", `duration "5x"`},
	},
	{
		name:    "bad global duration",
		yaml:    "global:\n  scrape_timeout: soon\n",
		wantErr: []string{"global.scrape_timeout (line 2)", `"soon"`},
	},
	{
		name:    "rule_files refused",
		yaml:    "rule_files: [rules.yml]\n",
		wantErr: []string{"field rule_files is not allowed in agent mode"},
	},
	{
		name:    "alerting refused",
		yaml:    "alerting:\n  alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]\n",
		wantErr: []string{"field alerting is not allowed in agent mode"},
	},
	{
		name:    "remote_read refused",
		yaml:    "remote_read: [{url: 'http://r/read'}]\n",
		wantErr: []string{"field remote_read is not allowed in agent mode"},
	},
	{
		name:    "unsupported discovery",
		yaml:    "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: pod}]\n",
		wantErr: []string{"line 3", "scrape_configs[0].kubernetes_sd_configs (line 3): service discovery kubernetes_sd_configs is not supported by shoal"},
	},
	{
		name:    "duplicate job",
		yaml:    "scrape_configs: [{job_name: a}, {job_name: a}]\n",
		wantErr: []string{`"a"`},
	},
}

func TestLoad(t *testing.T) {
	for _, tt := range loadCases {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load([]byte(tt.yaml), nil)
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				require.NotNil(t, cfg.Config)
				return
			}
			for _, want := range tt.wantErr {
				require.ErrorContains(t, err, want)
			}
		})
	}
}

// runtime.gogc is DefaultGoGC unless the file or $GOGC sets it (then the
// config package used that). Not parallel: it sets $GOGC.
func TestDefaultGoGC(t *testing.T) {
	for _, tc := range []struct {
		file string
		want int
	}{
		{"", DefaultGoGC},
		{"runtime: {}\n", DefaultGoGC},
		{"runtime:\n  gogc:\n", DefaultGoGC},
		{"runtime:\n  gogc: 75\n", 75},
		{"runtime:\n  gogc: 200\n", 200},
		{"runtime:\n  gogc: -1\n", -1},
	} {
		cfg, err := Load([]byte(tc.file), nil)
		require.NoError(t, err, tc.file)
		require.Equal(t, tc.want, cfg.Runtime.GoGC, "file %q", tc.file)
	}
	t.Setenv("GOGC", "100")
	cfg, err := Load(nil, nil)
	require.NoError(t, err)
	require.NotEqual(t, DefaultGoGC, cfg.Runtime.GoGC, "$GOGC set: the config package's value stays")
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(good, []byte("scrape_configs: [{job_name: a, file_sd_configs: [{files: [t.json]}]}]\n"), 0o600))
	cfg, err := LoadFile(good, nil)
	require.NoError(t, err)
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	require.Len(t, scfgs, 1)

	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("rule_files: [r.yml]\n"), 0o600))
	_, err = LoadFile(bad, nil)
	require.ErrorContains(t, err, "load config file "+bad+": field rule_files is not allowed in agent mode")

	_, err = LoadFile(filepath.Join(dir, "missing.yml"), nil)
	require.ErrorContains(t, err, "missing.yml")
}

// TestRemoteWriteURLChecked: URLs Prometheus loads but cannot send to are
// refused, shown without their password.
func TestRemoteWriteURLChecked(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ url, err string }{
		{`""`, "remote_write[0].url must not be empty"},
		{`rcv:9090/api/v1/write`, `remote_write[0].url "rcv:9090/api/v1/write" must start with http:// or https://`},
		{`/api/v1/write`, `must start with http:// or https://`},
		{`ftp://rcv/w`, `remote_write[0].url "ftp://rcv/w" must start with http:// or https://`},
		{`http://`, `must name a host`},
		{`https://user:secret@:9090/w`, `remote_write[0].url "https://user:xxxxx@:9090/w" must name a host`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			path := filepath.Join(dir, "prometheus.yml")
			require.NoError(t, os.WriteFile(path, []byte("remote_write:\n  - url: http://ok/w\n  - url: "+tc.url+"\n"), 0o600))
			_, err := LoadFile(path, nil)
			require.ErrorContains(t, err, strings.Replace(tc.err, "[0]", "[1]", 1))
			require.NotContains(t, err.Error(), "secret")
		})
	}
	for _, ok := range []string{"http://rcv:9090/api/v1/write", "https://user:pw@rcv/w", "http://[::1]:9090/w"} {
		_, err := Load([]byte("remote_write: [{url: '"+ok+"'}]\n"), nil)
		require.NoError(t, err, ok)
	}
	_, err := Load([]byte("remote_write: [{url: 'http://rcv/w', protobuf_message: io.prometheus.write.v2.Request}]\n"), nil)
	require.NoError(t, err, "remote-write 2.0 is sent too")
}

// TestAgentModeMatchesPrometheus checks that what Load refuses in agent mode
// Prometheus' own config.LoadFile refuses too.
func TestAgentModeMatchesPrometheus(t *testing.T) {
	for _, y := range []string{
		"rule_files: [rules.yml]\n",
		"alerting:\n  alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]\n",
		"alerting:\n  alert_relabel_configs: [{action: drop, source_labels: [x]}]\n",
		"remote_read: [{url: 'http://r/read'}]\n",
		"scrape_configs: [{job_name: a}]\n",
	} {
		path := filepath.Join(t.TempDir(), "p.yml")
		require.NoError(t, os.WriteFile(path, []byte(y), 0o600))
		_, promErr := config.LoadFile(path, true, nil)
		_, ourErr := Load([]byte(y), nil)
		require.Equal(t, promErr == nil, ourErr == nil, "config %q: prometheus %v, shoal %v", y, promErr, ourErr)
		if promErr != nil {
			require.EqualError(t, ourErr, promErr.Error())
		}
	}
}

func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"global: {scrape_interval: 15s}\n",
		"scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1']}]}]\n",
		"scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n",
		"rule_files: [r]\n",
		"remote_write: [{url: 'http://x/'}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(data, nil)
		if err == nil {
			require.NotNil(t, cfg.Config)
			// What loads must also be what Prometheus' agent mode accepts.
			require.Empty(t, cfg.RuleFiles)
			require.Empty(t, cfg.RemoteReadConfigs)
		}
	})
}

func TestWarnings(t *testing.T) {
	load := func(yaml string) *Config {
		t.Helper()
		cfg, err := Load([]byte(yaml), nil)
		require.NoError(t, err)
		return cfg
	}
	const jobs = `
scrape_configs:
  - job_name: slow
    scrape_interval: 30s
    static_configs: [{targets: ["a:1"]}]
  - job_name: fast
    scrape_interval: 2s
    static_configs: [{targets: ["b:1"]}]
`
	// Prometheus' default batch_send_deadline (5 s) against a 2 s job.
	w := load(jobs + "remote_write:\n  - url: http://user:secret@rcv:9090/api/v1/write\n").Warnings()
	require.Len(t, w, 1)
	for _, want := range []string{"remote_write[0]", "queue_config.batch_send_deadline 5s", "scrape_interval (2s, job \"fast\")", "below 2s"} {
		require.Contains(t, w[0], want)
	}
	require.NotContains(t, w[0], "secret", "the URL's password is redacted")

	// Below the shortest interval, or no remote write, or no jobs: nothing.
	require.Empty(t, load(jobs+"remote_write:\n  - url: http://rcv:9090/api/v1/write\n    queue_config: {batch_send_deadline: 1s}\n").Warnings())
	require.Empty(t, load(jobs).Warnings())
	require.Empty(t, load("remote_write:\n  - url: http://rcv:9090/api/v1/write\n").Warnings())

	// One warning per offending queue.
	two := load(jobs + "remote_write:\n  - url: http://a/w\n  - url: http://b/w\n    queue_config: {batch_send_deadline: 1s}\n  - url: http://c/w\n    queue_config: {batch_send_deadline: 2s}\n").Warnings()
	require.Len(t, two, 2)
	require.Contains(t, two[0], "remote_write[0] (http://a/w)")
	require.Contains(t, two[1], "remote_write[2] (http://c/w)")
}

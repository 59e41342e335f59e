package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/alecthomas/units"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/scrape"
)

var testLimits = scrape.Limits{BodySize: 64 * units.MiB, Samples: 200_000}

// limitCases: the limits each job ends with, and whether shoal set them.
var limitCases = []struct {
	name    string
	yaml    string
	body    units.Base2Bytes
	samples uint
	warned  bool
}{
	{"none", "scrape_configs: [{job_name: j}]", 64 * units.MiB, 200_000, true},
	{"own", "scrape_configs: [{job_name: j, body_size_limit: 1MB, sample_limit: 10}]", units.MiB, 10, false},
	{"explicit zero is unlimited", "scrape_configs: [{job_name: j, body_size_limit: 0, sample_limit: 0}]", 0, 0, false},
	{"one of two", "scrape_configs: [{job_name: j, sample_limit: 0}]", 64 * units.MiB, 0, true},
	{"global", "global: {body_size_limit: 2MB, sample_limit: 20}\nscrape_configs: [{job_name: j}]", 2 * units.MiB, 20, false},
	{"global zero is unlimited", "global: {body_size_limit: 0, sample_limit: 0}\nscrape_configs: [{job_name: j}]", 0, 0, false},
	// Prometheus' own rule: a job's 0 is "unset", so it inherits global's.
	{"job zero under a global limit", "global: {sample_limit: 20}\nscrape_configs: [{job_name: j, sample_limit: 0}]", 64 * units.MiB, 20, true},
	{"null is unset", "scrape_configs: [{job_name: j, sample_limit: null}]", 64 * units.MiB, 200_000, true},
	{"anchors", "x: &lim {sample_limit: 7}\nscrape_configs: [{job_name: j, <<: *lim}]", 64 * units.MiB, 7, true},
}

func TestApplyDefaultLimits(t *testing.T) {
	for _, tc := range limitCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "anchors" {
				// Prometheus refuses unknown top-level keys such as x.
				tc.yaml = "scrape_configs: [{job_name: j, <<: &lim {sample_limit: 7}}]"
			}
			cfg, err := Load([]byte(tc.yaml), nil)
			require.NoError(t, err)
			require.NoError(t, cfg.ApplyDefaultLimits(testLimits))
			scfgs, err := cfg.GetScrapeConfigs()
			require.NoError(t, err)
			require.Len(t, scfgs, 1)
			require.Equal(t, tc.body, scfgs[0].BodySizeLimit)
			require.Equal(t, tc.samples, scfgs[0].SampleLimit)
			require.Equal(t, tc.warned, len(cfg.LimitWarnings()) == 1, cfg.LimitWarnings())
			require.Equal(t, tc.warned, len(cfg.DefaultedLimits()) == 1)

			// No default: jobs keep what they set, and the warning says none applies.
			cfg, err = Load([]byte(tc.yaml), nil)
			require.NoError(t, err)
			require.NoError(t, cfg.ApplyDefaultLimits(scrape.Limits{}))
			require.Empty(t, cfg.DefaultedLimits())
			if tc.warned {
				require.Contains(t, cfg.LimitWarnings()[0], "(--scrape.default-")
				require.Contains(t, cfg.LimitWarnings()[0], "is 0)")
			}
		})
	}
}

// TestApplyDefaultLimitsScrapeConfigFiles: jobs from scrape_config_files get
// the defaults too, with their own fields read from their file, and keep
// them: the scrape manager reads the jobs from the config, not the files again.
func TestApplyDefaultLimitsScrapeConfigFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yml"), []byte("scrape_configs: [{job_name: a}, {job_name: b, sample_limit: 0}]\n"), 0o644))
	main := filepath.Join(dir, "shoal.yml")
	require.NoError(t, os.WriteFile(main, []byte("scrape_config_files: [a.yml]\nscrape_configs: [{job_name: m, body_size_limit: 1MB}]\n"), 0o644))
	cfg, err := LoadFile(main, nil)
	require.NoError(t, err)
	require.NoError(t, cfg.ApplyDefaultLimits(testLimits))
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	got := map[string][2]uint{}
	for _, sc := range scfgs {
		got[sc.JobName] = [2]uint{uint(sc.BodySizeLimit), sc.SampleLimit}
	}
	require.Equal(t, map[string][2]uint{
		"m": {uint(units.MiB), 200_000},
		"a": {uint(64 * units.MiB), 200_000},
		"b": {uint(64 * units.MiB), 0},
	}, got)
	require.Len(t, cfg.LimitWarnings(), 3)
}

// TestReloadAppliesDefaultLimits: the defaults apply on start and again on
// every reload, to the config the scrape manager runs.
func TestReloadAppliesDefaultLimits(t *testing.T) {
	path := writeConfig(t, "scrape_configs: [{job_name: j, static_configs: [{targets: ['127.0.0.1:1']}]}]\n")
	opts := agentOptions(t, "a1", path)
	opts.Scrape.DefaultLimits = scrape.Limits{BodySize: 3 * units.MiB, Samples: 30}
	a := startAgent(t, opts)
	limits := func() (units.Base2Bytes, uint) {
		a.cfgMu.Lock()
		defer a.cfgMu.Unlock()
		scfgs, err := a.cfg.GetScrapeConfigs()
		require.NoError(t, err)
		return scfgs[0].BodySizeLimit, scfgs[0].SampleLimit
	}
	b, n := limits()
	require.Equal(t, 3*units.MiB, b)
	require.Equal(t, uint(30), n)
	require.Contains(t, a.logs.String(), "applying the default")

	rewrite(t, path, "scrape_configs: [{job_name: j, sample_limit: 0, static_configs: [{targets: ['127.0.0.1:1']}]}]\n")
	require.NoError(t, a.Reload())
	b, n = limits()
	require.Equal(t, 3*units.MiB, b)
	require.Equal(t, uint(0), n)
}

package ops

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-dev/shoal/internal/testenv"
)

func TestPromtoolCheckRules(t *testing.T) {
	requirePromtool(t)
	path, err := RepoFile(AlertsFile)
	require.NoError(t, err)
	out, err := Promtool(t.Context(), "check", "rules", path)
	require.NoError(t, err)
	require.Contains(t, out, "SUCCESS")
	t.Log(strings.TrimSpace(out))
}

func TestPromtoolTestRules(t *testing.T) {
	requirePromtool(t)
	path, err := RepoFile(AlertTestsFile)
	require.NoError(t, err)
	out, err := Promtool(t.Context(), "test", "rules", path)
	require.NoError(t, err)
	require.Contains(t, out, "SUCCESS")
}

// TestPromtoolTestRulesFails checks that a wrong expectation makes promtool
// (and so the test above) fail: the unit tests cannot pass vacuously.
func TestPromtoolTestRulesFails(t *testing.T) {
	requirePromtool(t)
	src, err := RepoFile(AlertTestsFile)
	require.NoError(t, err)
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	alerts, err := RepoFile(AlertsFile)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Symlink(alerts, dir+"/alerts.yml"))
	// Expect the down agent to be b instead of a.
	broken := strings.Replace(string(b), `exp_labels: {severity: warning, job: shoal, instance: "a:9090"}`, `exp_labels: {severity: warning, job: shoal, instance: "b:9090"}`, 1)
	require.NotEqual(t, string(b), broken)
	require.NoError(t, os.WriteFile(dir+"/alerts_test.yml", []byte(broken), 0o644))
	out, err := Promtool(t.Context(), "test", "rules", dir+"/alerts_test.yml")
	require.Error(t, err)
	require.Contains(t, out, "ShoalAgentDown")
}

// alertTests is the part of a promtool test file the coverage test reads.
type alertTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name   string `yaml:"name"`
		Alerts []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertUnitTested requires, for every alert of the rules, a
// promtool case where it fires and one where it does not, and no case of an
// alert that does not exist.
func TestEveryAlertUnitTested(t *testing.T) {
	rgs := loadAlerts(t)
	path, err := RepoFile(AlertTestsFile)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var tf alertTests
	require.NoError(t, yaml.Unmarshal(b, &tf))
	require.Equal(t, []string{"alerts.yml"}, tf.RuleFiles)

	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.Alerts {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	names := map[string]bool{}
	for _, r := range Alerts(rgs) {
		names[r.Alert] = true
		require.True(t, fires[r.Alert], "no promtool case in which %s fires", r.Alert)
		require.True(t, quiet[r.Alert], "no promtool case in which %s stays quiet", r.Alert)
	}
	for name := range maps.Keys(fires) {
		require.True(t, names[name], "promtool case of %s, which is not an alert", name)
	}
	for name := range maps.Keys(quiet) {
		require.True(t, names[name], "promtool case of %s, which is not an alert", name)
	}
}

// TestRulesReadShoalMetrics requires every metric an alert reads to be
// declared in shoal's source or written by its scrapes, every alert to carry
// a severity and a summary, and a runbook line for it in the README.
func TestRulesReadShoalMetrics(t *testing.T) {
	rgs := loadAlerts(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	declared, err := DeclaredMetrics(root)
	require.NoError(t, err)
	readme, err := os.ReadFile(root + "/README.md")
	require.NoError(t, err)
	section := readmeSection(t, string(readme), "## Alerts")
	for _, r := range Alerts(rgs) {
		t.Run(r.Alert, func(t *testing.T) {
			names, err := MetricNames(r.Expr)
			require.NoError(t, err)
			require.NotEmpty(t, names)
			for _, n := range names {
				require.True(t, declared[n] || slices.Contains(ScrapeSeries, n), "%s reads %s, which shoal does not export", r.Alert, n)
			}
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"])
			require.NotEmpty(t, r.Annotations["summary"])
			require.NotEmpty(t, r.Annotations["description"])
			require.Regexp(t, regexp.MustCompile(`(?m)^\* \*\*`+r.Alert+`\*\*`), section, "no runbook line for %s in the README's Alerts section", r.Alert)
		})
	}
}

func TestWriteTestCopy(t *testing.T) {
	rgs := loadAlerts(t)
	path := t.TempDir() + "/alerts.yml"
	require.NoError(t, WriteTestCopy(rgs, map[string]Override{
		"ShoalRemoteWriteBehind": {For: 3 * time.Second, Replace: [][2]string{{"> 120", "> 10"}}},
	}, path))
	cp, err := LoadRules(path)
	require.NoError(t, err)
	require.Len(t, Alerts(cp), len(Alerts(rgs)))
	for i, r := range Alerts(cp) {
		orig := Alerts(rgs)[i]
		if r.Alert != "ShoalRemoteWriteBehind" {
			require.Equal(t, orig, r)
			continue
		}
		require.Equal(t, "3s", r.For.String())
		require.Contains(t, r.Expr, "> 10)")
		require.NotContains(t, r.Expr, "> 120")
	}
	require.ErrorContains(t, WriteTestCopy(rgs, map[string]Override{"ShoalNoSuch": {}}, path), "ShoalNoSuch: no such alert")
	require.ErrorContains(t, WriteTestCopy(rgs, map[string]Override{"ShoalAgentDown": {Replace: [][2]string{{"> 120", ""}}}}, path), `"> 120" does not occur`)
}

func TestMetricNames(t *testing.T) {
	names, err := MetricNames(`sum by (a) (rate(x_total{job="s"}[5m])) / on (a) group_left () y > 0 or vector(1)`)
	require.NoError(t, err)
	require.Equal(t, []string{"x_total", "y"}, names)
	_, err = MetricNames(`{job="shoal"}`)
	require.ErrorContains(t, err, "without a metric name")
	_, err = MetricNames(`rate(x[5m]`)
	require.Error(t, err)
}

func loadAlerts(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	path, err := RepoFile(AlertsFile)
	require.NoError(t, err)
	rgs, err := LoadRules(path)
	require.NoError(t, err)
	require.NotEmpty(t, Alerts(rgs))
	return rgs
}

// readmeSection returns the README's text from heading to the next
// heading of the same level.
func readmeSection(t *testing.T, readme, heading string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	require.GreaterOrEqual(t, i, 0, "README has no section %q", heading)
	rest := readme[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// requirePromtool skips without promtool, or fails with
// SHOAL_REQUIRE_INTEGRATION=1, as testenv does for its binaries.
func requirePromtool(t *testing.T) {
	t.Helper()
	testenv.SkipWithout(t, PromtoolBinary)
}

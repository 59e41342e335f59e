package ops

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestDashboardStatic checks the dashboard without a Prometheus: its
// variables, that every panel has queries on the datasource variable, and
// that every query parses (variables substituted) and names metrics.
func TestDashboardStatic(t *testing.T) {
	d := loadDashboard(t)
	for _, name := range []string{"datasource", "cluster", "instance"} {
		_, ok := d.Variable(name)
		require.True(t, ok, "no variable %s", name)
	}
	inst, _ := d.Variable("instance")
	require.True(t, inst.IncludeAll)
	vals := map[string]string{"datasource": "x", "cluster": "c", "instance": ".+", "__rate_interval": rateInterval}
	panels := d.QueryPanels()
	require.NotEmpty(t, panels)
	titles := map[string]bool{}
	for _, p := range panels {
		require.False(t, titles[p.Title], "two panels titled %q", p.Title)
		titles[p.Title] = true
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
		for _, tg := range p.Targets {
			q, err := Substitute(tg.Expr, vals)
			require.NoError(t, err, "panel %q", p.Title)
			names, err := MetricNames(q)
			require.NoError(t, err, "panel %q", p.Title)
			require.NotEmpty(t, names, "panel %q: %s", p.Title, tg.Expr)
			require.Contains(t, tg.Expr, `cluster=~"$cluster"`, "panel %q query %s ignores $cluster", p.Title, tg.RefID)
		}
	}
}

func TestSubstitute(t *testing.T) {
	got, err := Substitute(`rate(x{a=~"$cluster", b=~"${instance}", c="[[cluster]]"}[$__rate_interval])`,
		map[string]string{"cluster": "c1", "instance": "i|j", "__rate_interval": "1m"})
	require.NoError(t, err)
	require.Equal(t, `rate(x{a=~"c1", b=~"i|j", c="c1"}[1m])`, got)
	_, err = Substitute(`x{a="$nope"}`, nil)
	require.ErrorContains(t, err, "nope")
}

// checkDashboard evaluates the dashboard against the live monitor: the
// variable queries return the cluster and the agents; with every agent
// and with one, every query returns data (shoal creates its counters at 0),
// and every metric named is one shoal exports.
func checkDashboard(t *testing.T, monitor *testenv.Receiver, exported map[string]bool, agents []string) {
	d := loadDashboard(t)
	ctx := t.Context()
	now := time.Now()
	labelValues := func(v Variable, vals map[string]string) []string {
		q, err := Substitute(v.QueryString(), vals)
		require.NoError(t, err)
		sel, label, err := ParseLabelValues(q)
		require.NoError(t, err)
		names, err := MetricNames(sel)
		require.NoError(t, err)
		for _, n := range names {
			require.True(t, exported[n], "variable %s reads %s, which shoal does not export", v.Name, n)
		}
		got, _, err := monitor.API().LabelValues(ctx, label, []string{sel}, now.Add(-time.Hour), now)
		require.NoError(t, err)
		out := make([]string, len(got))
		for i, v := range got {
			out[i] = string(v)
		}
		return out
	}
	cv, _ := d.Variable("cluster")
	require.Equal(t, []string{liveCluster}, labelValues(cv, nil))
	iv, _ := d.Variable("instance")
	require.ElementsMatch(t, agents, labelValues(iv, map[string]string{"cluster": liveCluster}))

	for _, sel := range []struct{ name, instance string }{
		{"all agents", iv.AllValue},
		// Grafana escapes a value for a regex matcher, and the backslashes
		// for the PromQL string.
		{"one agent", strings.ReplaceAll(regexp.QuoteMeta(agents[0]), `\`, `\\`)},
	} {
		t.Run(sel.name, func(t *testing.T) {
			vals := map[string]string{"datasource": "monitor", "cluster": liveCluster, "instance": sel.instance, "__rate_interval": rateInterval}
			for _, p := range d.QueryPanels() {
				var withData int
				for _, tg := range p.Targets {
					q, err := Substitute(tg.Expr, vals)
					require.NoError(t, err)
					names, err := MetricNames(q)
					require.NoError(t, err)
					for _, n := range names {
						require.True(t, exported[n], "panel %q reads %s, which shoal does not export", p.Title, n)
					}
					res, err := monitor.Query(ctx, q, now)
					require.NoError(t, err, "panel %q", p.Title)
					if len(res) > 0 {
						withData++
						continue
					}
					t.Errorf("panel %q: query %s returns no data: %s", p.Title, tg.RefID, q)
				}
				require.Positive(t, withData, "panel %q returns no data", p.Title)
			}
		})
	}
}

func loadDashboard(t *testing.T) *Dashboard {
	t.Helper()
	path, err := RepoFile(DashboardFile)
	require.NoError(t, err)
	d, err := LoadDashboard(path)
	require.NoError(t, err)
	return d
}

package ops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Paths of the kit, relative to the repository root.
const (
	AlertsFile     = "deploy/alerts.yml"
	AlertTestsFile = "deploy/alerts_test.yml"
	DashboardFile  = "deploy/grafana/shoal.json"
)

// RepoFile returns the absolute path of a file of the repository.
func RepoFile(rel string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, rel), nil
}

var promql = parser.NewParser(parser.Options{})

// LoadRules parses and validates a rule file as Prometheus does.
func LoadRules(path string) (*rulefmt.RuleGroups, error) {
	rgs, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, promql, nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse rules: %w", errors.Join(errs...))
	}
	return rgs, nil
}

// Alerts returns the alerting rules of rgs in file order.
func Alerts(rgs *rulefmt.RuleGroups) []rulefmt.Rule {
	var out []rulefmt.Rule
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// MetricNames returns the sorted, distinct metric names expr selects. A
// selector without a fixed name ({job="x"}, {__name__=~"..."}) is an error:
// nothing could check what it reads.
func MetricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	for _, sel := range parser.ExtractSelectors(e) {
		i := slices.IndexFunc(sel, func(m *labels.Matcher) bool {
			return m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual
		})
		if i < 0 {
			return nil, fmt.Errorf("%q has a selector without a metric name: %v", expr, sel)
		}
		names = append(names, sel[i].Value)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Override changes one alert in a test copy of the rules: For replaces its
// `for:`, and each Replace pair [old, new] replaces every occurrence of old
// in its expression, which must occur.
type Override struct {
	For     time.Duration
	Replace [][2]string
}

// WriteTestCopy writes rgs to path with the overrides applied. Every
// override must name an alert of rgs.
func WriteTestCopy(rgs *rulefmt.RuleGroups, overrides map[string]Override, path string) error {
	var cp rulefmt.RuleGroups
	done := map[string]bool{}
	for _, g := range rgs.Groups {
		g.Rules = slices.Clone(g.Rules)
		for i, r := range g.Rules {
			o, ok := overrides[r.Alert]
			if r.Alert == "" || !ok {
				continue
			}
			r.For = model.Duration(o.For)
			for _, rep := range o.Replace {
				if !strings.Contains(r.Expr, rep[0]) {
					return fmt.Errorf("override of %s: %q does not occur in its expression", r.Alert, rep[0])
				}
				r.Expr = strings.ReplaceAll(r.Expr, rep[0], rep[1])
			}
			g.Rules[i] = r
			done[r.Alert] = true
		}
		cp.Groups = append(cp.Groups, g)
	}
	for name := range overrides {
		if !done[name] {
			return fmt.Errorf("override of %s: no such alert", name)
		}
	}
	b, err := yaml.Marshal(&cp)
	if err != nil {
		return fmt.Errorf("marshal rules: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// declRE finds the metric names shoal's source declares: Name fields of
// metric options and prometheus.NewDesc's first argument.
var declRE = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// sourcePackages are where shoal declares its metrics.
var sourcePackages = []string{"agent", "gossip", "delivery", "sd", "scrape"}

// DeclaredMetrics returns the metric names declared in the non-test Go
// files of shoal's packages under root.
func DeclaredMetrics(root string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, pkg := range sourcePackages {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			for _, m := range declRE.FindAllSubmatch(b, -1) {
				if n := string(m[1]); strings.Contains(n, "_") {
					out[n] = true
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no metric declarations found under %s", root)
	}
	return out, nil
}

// ScrapeSeries are the series Prometheus' scrape loop writes for every
// target: shoal sends them with the target's samples.
var ScrapeSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

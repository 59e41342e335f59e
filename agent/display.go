package agent

import (
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/shoal-dev/shoal/internal/redact"
)

// What the API and the status page show of scrape URLs. Ownership keys,
// the fence and the handoff use the real URLs; these only mask what is
// shown: URL passwords always, and the values of query parameters (a scrape
// config's params, such as ?token=, and the __param_* labels carrying them)
// unless --web.show-scrape-params is set.

// showURL is a scrape URL, or a text quoting some such as a scrape error,
// as the API and the page show it.
func (a *Agent) showURL(u string) string {
	if a.opts.Web.ShowScrapeParams {
		return redact.String(u)
	}
	return redact.Queries(u)
}

// showLabel is a target label's value as the API shows it.
func (a *Agent) showLabel(name, value string) string {
	switch {
	case strings.HasPrefix(name, model.ParamLabelPrefix):
		if a.opts.Web.ShowScrapeParams {
			return value
		}
		return redact.Mask
	case name == model.AddressLabel || name == model.InstanceLabel:
		return redact.Address(value)
	default:
		return a.showURL(value)
	}
}

// showLabels applies showLabel to every label of ls; ls itself is returned
// when nothing changes, as is usual.
func (a *Agent) showLabels(ls labels.Labels) labels.Labels {
	var b *labels.Builder
	ls.Range(func(l labels.Label) {
		if v := a.showLabel(l.Name, l.Value); v != l.Value {
			if b == nil {
				b = labels.NewBuilder(ls)
			}
			b.Set(l.Name, v)
		}
	})
	if b == nil {
		return ls
	}
	return b.Labels()
}

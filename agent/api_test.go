package agent

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/scrape"
)

// TestDiscoveredLabelsHideTheKey checks that /api/v1/targets shows what
// discovery found, not the key the filter adds for the fence.
func TestDiscoveredLabelsHideTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		disc model.LabelSet
		want labels.Labels
	}{
		{"with key", model.LabelSet{model.AddressLabel: "h:80", scrape.KeyLabel: "0123456789abcdef", "dc": "x"}, labels.FromStrings(model.AddressLabel, "h:80", "dc", "x")},
		{"without key", model.LabelSet{model.AddressLabel: "h:80"}, labels.FromStrings(model.AddressLabel, "h:80")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := promscrape.NewTarget(labels.FromStrings(model.AddressLabel, "h:80"), &config.ScrapeConfig{}, tc.disc, nil)
			got := discoveredLabels(tgt, labels.NewBuilder(labels.EmptyLabels()))
			require.Empty(t, got.Get(scrape.KeyLabel))
			tc.want.Range(func(l labels.Label) { require.Equal(t, l.Value, got.Get(l.Name), l.Name) })
		})
	}
}

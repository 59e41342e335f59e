package fleet

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCounterTotals(t *testing.T) {
	tests := []struct {
		name     string
		readings []map[Counter]float64 // of one source, in order
		want     float64
	}{
		{"rising", []map[Counter]float64{{shoalFailed: 1}, {shoalFailed: 4}}, 4},
		{"restart banks the last value", []map[Counter]float64{{shoalFailed: 5}, {shoalFailed: 2}, {shoalFailed: 3}}, 8},
		{"absent counter", []map[Counter]float64{{}, {}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := newCounterTotals()
			for _, r := range tt.readings {
				ct.observe("a", r)
			}
			ct.observe("b", map[Counter]float64{shoalFailed: 10})
			require.Equal(t, tt.want+10, ct.total(shoalFailed))
		})
	}
}

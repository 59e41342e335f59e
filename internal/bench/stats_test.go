package bench

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want Spread
	}{
		{"odd", []float64{3, 1, 2}, Spread{Median: 2, Min: 1, Max: 3, N: 3}},
		{"even", []float64{4, 1, 3, 2}, Spread{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"one", []float64{7}, Spread{Median: 7, Min: 7, Max: 7, N: 1}},
		{"NaN left out", []float64{nan, 5, 1, nan}, Spread{Median: 3, Min: 1, Max: 5, N: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Summarize(tc.in))
			require.Equal(t, tc.want.Median, Median(tc.in))
		})
	}
	empty := Summarize([]float64{nan})
	require.Zero(t, empty.N)
	require.True(t, math.IsNaN(empty.Median) && math.IsNaN(empty.Min) && math.IsNaN(empty.Max))
	require.True(t, math.IsNaN(Median(nil)))
}

func TestSummarizeDoesNotReorder(t *testing.T) {
	in := []float64{3, 1, 2}
	Summarize(in)
	require.Equal(t, []float64{3, 1, 2}, in)
}

func TestRatios(t *testing.T) {
	got := Ratios([]float64{2, 3, 4, math.NaN()}, []float64{1, 0, 8})
	require.Len(t, got, 3)
	require.Equal(t, 2.0, got[0])
	require.True(t, math.IsNaN(got[1]), "zero divisor")
	require.Equal(t, 0.5, got[2])
}

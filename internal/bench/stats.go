package bench

import (
	"math"
	"slices"
)

// Spread is the median of some measurements with their range.
type Spread struct {
	Median, Min, Max float64
	// N is how many measurements there were; NaNs are left out.
	N int
}

// Summarize returns the median, minimum and maximum of xs, leaving out NaNs
// (a measurement that could not be taken). With no measurement every field
// is NaN and N is 0.
func Summarize(xs []float64) Spread {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	return Spread{Median: median(v), Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// Median returns the median of xs, leaving out NaNs; NaN if none is left.
func Median(xs []float64) float64 { return Summarize(xs).Median }

// median of sorted, non-empty v: the middle value, or the mean of the two
// middle values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Ratios divides a[i] by b[i] pairwise: runs of the same repetition are
// compared with each other, so noise that hit one repetition hits both
// sides. A pair with a missing side or a zero divisor gives NaN.
func Ratios(a, b []float64) []float64 {
	out := make([]float64, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		if b[i] == 0 {
			out = append(out, math.NaN())
			continue
		}
		out = append(out, a[i]/b[i])
	}
	return out
}

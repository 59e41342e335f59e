package testenv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
)

// toSamples converts an instant-query result.
func toSamples(query string, val model.Value) ([]Sample, error) {
	switch v := val.(type) {
	case model.Vector:
		out := make([]Sample, 0, len(v))
		for _, s := range v {
			out = append(out, Sample{Labels: labelMap(s.Metric), T: s.Timestamp.Time(), V: sampleValue(s.Value, s.Histogram)})
		}
		slices.SortFunc(out, func(a, b Sample) int { return strings.Compare(labelString(a.Labels), labelString(b.Labels)) })
		return out, nil
	case *model.Scalar:
		return []Sample{{T: v.Timestamp.Time(), V: float64(v.Value)}}, nil
	default:
		return nil, fmt.Errorf("query %q returned a %s, want a vector or scalar", query, val.Type())
	}
}

// toSeries converts a matrix result, from a range query or a range selector.
func toSeries(query string, val model.Value) ([]Series, error) {
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query %q returned a %s, want a matrix", query, val.Type())
	}
	out := make([]Series, 0, len(m))
	for _, ss := range m {
		s := Series{Labels: labelMap(ss.Metric), Points: make([]Point, 0, len(ss.Values)+len(ss.Histograms))}
		for _, p := range ss.Values {
			s.Points = append(s.Points, Point{T: p.Timestamp.Time(), V: float64(p.Value)})
		}
		for _, h := range ss.Histograms {
			s.Points = append(s.Points, Point{T: h.Timestamp.Time(), V: float64(h.Histogram.Count)})
		}
		slices.SortStableFunc(s.Points, func(a, b Point) int { return a.T.Compare(b.T) })
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Series) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// sampleValue is the float value, or a native histogram's count, which is
// enough for tests that only need to see that a sample arrived.
func sampleValue(v model.SampleValue, h *model.SampleHistogram) float64 {
	if h != nil {
		return float64(h.Count)
	}
	return float64(v)
}

func labelMap(m model.Metric) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}

func labelString(l map[string]string) string {
	ls := make(model.LabelSet, len(l))
	for k, v := range l {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.String()
}

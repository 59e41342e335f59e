package delivery

import (
	"fmt"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// toV2 turns a batch (a remote-write 1.0 WriteRequest) into a
// remote-write 2.0 Request, for endpoints with protobuf_message
// io.prometheus.write.v2.Request. A Prometheus 3 receiver then refuses only
// the out-of-order samples of a request instead of the whole request.
// Exemplars are not carried over, nor metadata (there is none in 1.0).
func toV2(raw []byte) ([]byte, error) {
	var in prompb.WriteRequest
	if err := in.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	st := writev2.NewSymbolTable()
	out := writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(in.Timeseries))}
	for _, ts := range in.Timeseries {
		refs := make([]uint32, 0, 2*len(ts.Labels))
		for _, l := range ts.Labels {
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		o := writev2.TimeSeries{LabelsRefs: refs}
		for _, s := range ts.Samples {
			o.Samples = append(o.Samples, writev2.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		for _, h := range ts.Histograms {
			if h.IsFloatHistogram() {
				o.Histograms = append(o.Histograms, writev2.FromFloatHistogram(0, h.Timestamp, h.ToFloatHistogram()))
			} else {
				o.Histograms = append(o.Histograms, writev2.FromIntHistogram(0, h.Timestamp, h.ToIntHistogram()))
			}
		}
		out.Timeseries = append(out.Timeseries, o)
	}
	out.Symbols = st.Symbols()
	return out.Marshal()
}

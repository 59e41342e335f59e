package delivery

import (
	"encoding/binary"
	"math"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// Remote-write 1.0 protobuf, written by hand: a record is a run of
// WriteRequest.timeseries fields (field 1), so records concatenate into a
// request. A sample's labels are encoded as it is appended (with the
// endpoint's external labels merged in), which costs less than keeping
// them encoded per series; the sample itself is about 20 bytes of appends.
//
//	WriteRequest { repeated TimeSeries timeseries = 1; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//	               repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
//	Exemplar     { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func appendBytesField(b []byte, field int, v string) []byte {
	b = appendTag(b, field, 2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func sizeVarint(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// encodeLabels encodes ls as TimeSeries.labels fields.
func encodeLabels(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) { b = appendLabel(b, l.Name, l.Value) })
	return b
}

// encodeLabelsExt encodes ls with the external labels ext (sorted by
// name) merged in, in order; a label of the series wins over an external
// label of the same name, as in Prometheus.
func encodeLabelsExt(b []byte, ls labels.Labels, ext []labels.Label) []byte {
	if len(ext) == 0 {
		return encodeLabels(b, ls)
	}
	j := 0
	ls.Range(func(l labels.Label) {
		for j < len(ext) && ext[j].Name < l.Name {
			b = appendLabel(b, ext[j].Name, ext[j].Value)
			j++
		}
		if j < len(ext) && ext[j].Name == l.Name {
			j++
		}
		b = appendLabel(b, l.Name, l.Value)
	})
	for ; j < len(ext); j++ {
		b = appendLabel(b, ext[j].Name, ext[j].Value)
	}
	return b
}

// appendLabel appends one TimeSeries.labels field.
func appendLabel(b []byte, name, value string) []byte {
	if n, v := len(name), len(value); n+v < 0x80-4 {
		// The common case: every length is one byte.
		b = append(b, 1<<3|2, byte(2+n+2+v), 1<<3|2, byte(n))
		b = append(b, name...)
		b = append(b, 2<<3|2, byte(v))
		return append(b, value...)
	}
	b = appendTag(b, 1, 2)
	b = binary.AppendUvarint(b, uint64(1+sizeVarint(uint64(len(name)))+len(name)+1+sizeVarint(uint64(len(value)))+len(value)))
	b = appendBytesField(b, 1, name)
	return appendBytesField(b, 2, value)
}

// sampleSize is the size of an encoded Sample message.
func sampleSize(t int64) int { return 1 + 8 + 1 + sizeVarint(uint64(t)) }

// appendSeries appends one TimeSeries holding the pre-encoded labels and
// either a float sample or a histogram, and exemplars.
func appendSeries(b, lbls []byte, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, ex []exemplar.Exemplar) []byte {
	var hp *prompb.Histogram
	switch {
	case fh != nil:
		x := prompb.FromFloatHistogram(t, fh)
		hp = &x
	case h != nil:
		x := prompb.FromIntHistogram(t, h)
		hp = &x
	}
	size := len(lbls)
	if hp != nil {
		n := hp.Size()
		size += 1 + sizeVarint(uint64(n)) + n
	} else {
		n := sampleSize(t)
		size += 1 + sizeVarint(uint64(n)) + n
	}
	var exb []byte
	for _, e := range ex {
		exb = appendExemplar(exb, e)
	}
	size += len(exb)

	b = appendTag(b, 1, 2)
	b = binary.AppendUvarint(b, uint64(size))
	b = append(b, lbls...)
	if hp != nil {
		n := hp.Size()
		b = appendTag(b, 4, 2)
		b = binary.AppendUvarint(b, uint64(n))
		start := len(b)
		b = append(b, make([]byte, n)...)
		_, _ = hp.MarshalToSizedBuffer(b[start:])
	} else {
		b = appendTag(b, 2, 2)
		b = binary.AppendUvarint(b, uint64(sampleSize(t)))
		b = appendTag(b, 1, 1)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		b = appendTag(b, 2, 0)
		b = binary.AppendUvarint(b, uint64(t))
	}
	return append(b, exb...)
}

func appendExemplar(b []byte, e exemplar.Exemplar) []byte {
	lbls := encodeLabels(nil, e.Labels)
	body := len(lbls) + 1 + 8 + 1 + sizeVarint(uint64(e.Ts))
	b = appendTag(b, 3, 2)
	b = binary.AppendUvarint(b, uint64(body))
	b = append(b, lbls...)
	b = appendTag(b, 2, 1)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.Value))
	b = appendTag(b, 3, 0)
	return binary.AppendUvarint(b, uint64(e.Ts))
}

package testenv

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// remoteReadLimit caps one frame of a streamed remote-read answer, as
// Prometheus' own remote_read default does (50 MB).
const remoteReadLimit = 50e6

// StaleMarkers returns the series that matchers select which hold staleness
// markers (value.StaleNaN) with timestamps in [start, end], each with the
// markers as its points (V is NaN). PromQL hides staleness markers, so they
// are read raw through the server's remote-read endpoint (/api/v1/read).
// Series without a marker are left out; series are sorted by labels.
func (r *Receiver) StaleMarkers(ctx context.Context, start, end time.Time, matchers ...*labels.Matcher) ([]Series, error) {
	u, err := url.Parse(r.URL + "/api/v1/read")
	if err != nil {
		return nil, err
	}
	c, err := remote.NewReadClient("testenv", &remote.ClientConfig{
		URL:              &config_util.URL{URL: u},
		Timeout:          model.Duration(30 * time.Second),
		ChunkedReadLimit: remoteReadLimit,
	})
	if err != nil {
		return nil, fmt.Errorf("remote-read client for %s: %w", u, err)
	}
	q, err := remote.ToQuery(start.UnixMilli(), end.UnixMilli(), matchers, nil)
	if err != nil {
		return nil, fmt.Errorf("remote-read query %v: %w", matchers, err)
	}
	set, err := c.Read(ctx, q, true)
	if err != nil {
		return nil, fmt.Errorf("remote read %v from %s: %w", matchers, u, err)
	}
	var out []Series
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		var stale []Point
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			if t, v := it.At(); value.IsStaleNaN(v) {
				stale = append(stale, Point{T: time.UnixMilli(t), V: v})
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("remote read %v: series %s: %w", matchers, s.Labels(), err)
		}
		if len(stale) > 0 {
			out = append(out, Series{Labels: s.Labels().Map(), Points: stale})
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("remote read %v: %w", matchers, err)
	}
	slices.SortFunc(out, func(a, b Series) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

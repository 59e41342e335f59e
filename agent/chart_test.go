package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct {
		v       float64
		integer bool
		want    float64
	}{
		{0, false, 1}, {0.3, false, 1}, {1, false, 1}, {1.2, false, 2}, {3, false, 5}, {7, false, 10},
		{10, false, 10}, {11, false, 20}, {2345, false, 5000}, {0, true, 2}, {2, true, 2}, {3, true, 5}, {34, true, 50},
	} {
		require.Equal(t, tc.want, niceCeil(tc.v, tc.integer), "%v integer=%v", tc.v, tc.integer)
	}
}

func TestChartLayout(t *testing.T) {
	end := histT0.Add(15 * time.Minute)
	span := 15 * time.Minute
	vals := []chartValue{
		{start: histT0.Add(-15 * time.Second), end: histT0, v: 99},                   // ends at the span's start: not shown
		{start: histT0, end: histT0.Add(15 * time.Second), v: 0},                     // the first interval
		{start: end.Add(-30 * time.Second), end: end.Add(-15 * time.Second), v: 250}, // the top of the axis is 500
		{start: end.Add(-15 * time.Second), end: end, v: 125},
	}
	c := newChart("c", "Title", "samples/s", end, span, vals, rateString, false)
	require.Equal(t, 3, c.Points)
	require.Equal(t, "0", c.Min)
	require.Equal(t, "250", c.Max)
	require.Equal(t, "125", c.Current)
	require.Len(t, c.Bars, 3)

	plotW, plotH := c.PlotRight-c.PlotLeft, c.PlotBottom-c.PlotTop
	first, top, last := c.Bars[0], c.Bars[1], c.Bars[2]
	require.InDelta(t, c.PlotLeft, first.X, 1e-9, "the span's start is the plot's left edge")
	require.Zero(t, first.H)
	require.Equal(t, "10:00:00–10:00:15: 0 samples/s", first.Title)
	require.InDelta(t, plotH/2, top.H, 1e-9, "250 of an axis up to 500")
	require.InDelta(t, c.PlotBottom-top.H, top.Y, 1e-9)
	require.InDelta(t, plotH/4, last.H, 1e-9)
	require.InDelta(t, c.PlotRight, last.X+last.W+1, 1e-9, "the last interval ends at the right edge, less the gap")
	require.InDelta(t, plotW/60-1, last.W, 1e-9, "15 s of 15 minutes")
	for _, b := range c.Bars {
		require.Equal(t, c.PlotTop, b.HitY)
		require.Equal(t, plotH, b.HitH, "every bar's title is reachable over the plot's height")
	}

	var ylabels, xlabels []string
	for _, tk := range c.YTicks {
		ylabels = append(ylabels, tk.Label)
	}
	for _, tk := range c.XTicks {
		xlabels = append(xlabels, tk.Label)
	}
	require.Equal(t, []string{"0", "250", "500"}, ylabels)
	require.Equal(t, []string{"-15m", "-10m", "-5m", "now"}, xlabels)
	require.Equal(t, "start", c.XTicks[0].Anchor)
	require.Equal(t, "end", c.XTicks[3].Anchor)

	moves := newChart("m", "Moves", "moves", end, span, []chartValue{{start: end.Add(-15 * time.Second), end: end, v: 1}}, countString, true)
	ylabels = nil
	for _, tk := range moves.YTicks {
		ylabels = append(ylabels, tk.Label)
	}
	require.Equal(t, []string{"0", "1", "2"}, ylabels, "counts get whole labels")

	empty := newChart("e", "Empty", "moves", end, span, nil, countString, true)
	require.Zero(t, empty.Points)
	require.Empty(t, empty.Bars)
	require.Empty(t, empty.Max)
}

func TestChartFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 3.14159: "3.14", 12.345: "12.3", 1234.5: "1,235", 2_000_000: "2,000,000"} {
		require.Equal(t, want, rateString(v))
	}
	for d, want := range map[time.Duration]string{15 * time.Minute: "15m", 30 * time.Second: "30s", time.Hour: "1h", 1500 * time.Millisecond: "1.5s"} {
		require.Equal(t, want, shortDuration(d))
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3_250_000: "3.1 MiB", 2 << 30: "2.0 GiB"} {
		require.Equal(t, want, bytesString(n))
	}
	for d, want := range map[time.Duration]string{0: "0s", 1234 * time.Millisecond: "1.2s", 42 * time.Second: "42s", 3*time.Minute + 5*time.Second: "3m5s"} {
		require.Equal(t, want, lagString(d))
	}
	for d, want := range map[time.Duration]string{850 * time.Microsecond: "850µs", 12345 * time.Microsecond: "12.3ms", 1204 * time.Millisecond: "1.204s"} {
		require.Equal(t, want, scrapeDuration(d))
	}
}

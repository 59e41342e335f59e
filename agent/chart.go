package agent

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// The status page's charts are inline SVG computed here and drawn by the
// template: no script, no external asset, and every value is also text (a
// <title> per bar, a caption with the minimum, maximum and latest value).

// Chart geometry, in SVG user units (the viewBox); the SVG scales to its
// box's width.
const (
	chartWidth   = 560
	chartHeight  = 170
	chartLeft    = 56 // room for the y labels and the y axis' title
	chartRight   = 12
	chartTop     = 10
	chartBottom  = 36 // room for the x labels and the x axis' title
	chartXTicks  = 3  // labelled instants between the span's start and now
	chartMinBarW = 1.0
)

// chartValue is one interval's value.
type chartValue struct {
	start, end time.Time
	v          float64
}

// pageChart is one chart as the template draws it.
type pageChart struct {
	ID, Title string
	// Unit names the y axis ("samples/s").
	Unit string
	// Span is the x axis' length, e.g. "15m0s".
	Span string
	End  time.Time

	Width, Height                 int
	PlotLeft, PlotTop, PlotBottom float64
	PlotRight                     float64
	Bars                          []chartBar
	XTicks, YTicks                []chartTick
	YTitleX, YTitleY              float64
	XTitleX, XTitleY              float64

	// Min, Max and Current (the latest interval's value), formatted, and
	// raw for the data attributes; Points is the number of intervals.
	Min, Max, Current    string
	MinV, MaxV, CurrentV float64
	Points               int
}

// chartBar is one interval's bar; Title is its text ("10:05:00–10:05:15:
// 1,234 samples/s"). HitY and HitH cover the plot's height, so that a bar
// of 0 shows its title too.
type chartBar struct {
	X, Y, W, H float64
	HitY, HitH float64
	Value      string
	V          float64
	Title      string
}

// chartTick is a labelled position on an axis (a y or an x coordinate),
// its label at (LX, LY), anchored start, middle or end.
type chartTick struct {
	Pos, LX, LY float64
	Label       string
	Anchor      string
}

// newChart lays out vals (oldest first) over the span ending at end. fmtV
// formats a value; integer says values are counts, so the y axis has no
// fractional label.
func newChart(id, title, unit string, end time.Time, span time.Duration, vals []chartValue, fmtV func(float64) string, integer bool) pageChart {
	c := pageChart{
		ID: id, Title: title, Unit: unit, Span: span.String(), End: end,
		Width: chartWidth, Height: chartHeight,
		PlotLeft: chartLeft, PlotRight: chartWidth - chartRight, PlotTop: chartTop, PlotBottom: chartHeight - chartBottom,
	}
	c.YTitleX, c.YTitleY = 14, (c.PlotTop+c.PlotBottom)/2
	c.XTitleX, c.XTitleY = (c.PlotLeft+c.PlotRight)/2, chartHeight-4
	start := end.Add(-span)
	var shown []chartValue
	for _, v := range vals {
		if v.end.After(start) && !v.end.After(end) {
			shown = append(shown, v)
		}
	}
	c.Points = len(shown)
	top := 0.0
	if len(shown) > 0 {
		c.MinV, c.MaxV = math.Inf(1), math.Inf(-1)
		for _, v := range shown {
			c.MinV, c.MaxV = math.Min(c.MinV, v.v), math.Max(c.MaxV, v.v)
		}
		c.CurrentV = shown[len(shown)-1].v
		c.Min, c.Max, c.Current = fmtV(c.MinV), fmtV(c.MaxV), fmtV(c.CurrentV)
		top = c.MaxV
	}
	top = niceCeil(top, integer)
	plotW, plotH := c.PlotRight-c.PlotLeft, c.PlotBottom-c.PlotTop
	x := func(t time.Time) float64 {
		return c.PlotLeft + plotW*float64(t.Sub(start))/float64(span)
	}
	for _, v := range shown {
		x0, x1 := math.Max(x(v.start), c.PlotLeft), x(v.end)
		w := math.Max(x1-x0-1, chartMinBarW) // a gap of one unit between bars
		h := plotH * v.v / top
		c.Bars = append(c.Bars, chartBar{
			X: x0, Y: c.PlotBottom - h, W: w, H: h, HitY: c.PlotTop, HitH: plotH,
			Value: fmtV(v.v), V: v.v,
			Title: v.start.Format("15:04:05") + "–" + v.end.Format("15:04:05") + ": " + fmtV(v.v) + " " + unit,
		})
	}
	for i := range 3 {
		val := top * float64(i) / 2
		if integer && val != math.Trunc(val) {
			continue
		}
		y := c.PlotBottom - plotH*float64(i)/2
		c.YTicks = append(c.YTicks, chartTick{Pos: y, LX: c.PlotLeft - 5, LY: y + 4, Label: fmtV(val), Anchor: "end"})
	}
	for i := 0; i <= chartXTicks; i++ {
		ago := span * time.Duration(chartXTicks-i) / chartXTicks
		label := "now"
		if ago > 0 {
			label = "-" + shortDuration(ago)
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case chartXTicks:
			anchor = "end"
		}
		px := c.PlotLeft + plotW*float64(i)/chartXTicks
		c.XTicks = append(c.XTicks, chartTick{Pos: px, LX: px, LY: c.PlotBottom + 14, Label: label, Anchor: anchor})
	}
	return c
}

// niceCeil is the smallest 1, 2 or 5 times a power of ten at least v (at
// least 1, and at least 2 for counts, so the axis has a middle label).
func niceCeil(v float64, integer bool) float64 {
	floor := 1.0
	if integer {
		floor = 2
	}
	if v <= floor {
		return floor
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// shortDuration is d in one unit where it is whole: "15m", "30s", "1h".
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d%time.Second == 0:
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return d.String()
}

// rateString formats a rate readably: "1,234", "12.5", "0.25".
func rateString(v float64) string {
	switch {
	case v >= 100:
		return thousands(int64(math.Round(v)))
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v == 0:
		return "0"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// countString formats a count.
func countString(v float64) string { return thousands(int64(math.Round(v))) }

// svgNum formats an SVG coordinate.
func svgNum(v float64) string { return fmt.Sprintf("%.1f", v) }

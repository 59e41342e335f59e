package bench

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Size of the cost curve's image: two panels side by side.
const (
	plotWidth  = 30 * vg.Centimeter
	plotHeight = 12 * vg.Centimeter
)

// legendHeadroom is how far above the highest point the y axis ends, so
// the legend does not cover a line; xMargin how far the x axis extends
// past the first and the last size (a factor: the axis is logarithmic).
const (
	legendHeadroom = 1.3
	xMargin        = 1.25
)

// runColors tell the agents apart in the plot.
var runColors = map[string]color.Color{
	RunShoal:      color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	RunPrometheus: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	RunVMAgent:    color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	RunCandidate:  color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// WritePlot draws the cost curve of results into a PNG file at path: on
// the left resident bytes per active series (solid: median RSS; dashed:
// peak RSS), on the right CPU seconds per million samples; x is the active
// series of one agent, on a log scale; one line per agent. title names the
// date and the machine.
func WritePlot(path string, results []ScaleResult, title string) error {
	curves := Curves(results)
	if len(curves) == 0 {
		return errors.New("no results to plot")
	}
	mem := newCurvePlot("Resident bytes per active series (solid: RSS, dashed: peak)\n"+title, "bytes per series (log scale)")
	// Bytes per series fall by two orders of magnitude from the smallest
	// size, where the binary and the runtime dominate, to the largest.
	mem.Y.Scale, mem.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	cpu := newCurvePlot("CPU per million samples\n"+title, "CPU seconds")
	cpu.Y.Min = 0
	var ticks []plot.Tick
	for _, run := range scaleAllowed {
		ps := curves[run]
		if len(ps) == 0 {
			continue
		}
		rss, hwm, cpus := make(plotter.XYs, len(ps)), make(plotter.XYs, len(ps)), make(plotter.XYs, len(ps))
		for i, p := range ps {
			rss[i] = plotter.XY{X: p.Series, Y: p.RSSPerSeries}
			hwm[i] = plotter.XY{X: p.Series, Y: p.HWMPerSeries}
			cpus[i] = plotter.XY{X: p.Series, Y: p.CPUPerMSample}
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Label == p.Size }) {
				ticks = append(ticks, plot.Tick{Value: p.Series, Label: sizeLabel(p.Size)})
			}
		}
		c := runColors[run]
		if err := addLine(mem, run, rss, c, nil); err != nil {
			return err
		}
		if err := addLine(mem, "", hwm, c, []vg.Length{vg.Points(4), vg.Points(3)}); err != nil {
			return err
		}
		if err := addLine(cpu, run, cpus, c, nil); err != nil {
			return err
		}
	}
	for _, p := range []*plot.Plot{mem, cpu} {
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		// Room for the legend above the highest line, and for the end
		// points' glyphs.
		p.Y.Max *= legendHeadroom
		p.X.Min /= xMargin
		p.X.Max *= xMargin
	}
	// On the log axis: from the power of ten below the lowest point, and
	// the same room for the legend as on the linear one.
	lo := math.Inf(1)
	for _, ps := range curves {
		for _, p := range ps {
			lo = min(lo, p.RSSPerSeries, p.HWMPerSeries)
		}
	}
	mem.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	mem.Y.Max *= legendHeadroom * legendHeadroom

	img := vgimg.New(plotWidth, plotHeight)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadX: vg.Millimeter * 8}
	plots := [][]*plot.Plot{{mem, cpu}}
	canvases := plot.Align(plots, tiles, dc)
	mem.Draw(canvases[0][0])
	cpu.Draw(canvases[0][1])

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func newCurvePlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "active series per agent (log scale)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line with points; name, if not empty, goes in the legend.
func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dashes []vg.Length) error {
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("line %s: %w", name, err)
	}
	l.Color, s.Color = c, c
	l.Width = vg.Points(1.5)
	l.Dashes = dashes
	s.Shape = draw.CircleGlyph{}
	p.Add(l, s)
	if name != "" {
		p.Legend.Add(name, l, s)
	}
	return nil
}

// sizeLabel writes a named size as people do: "1M", not the flag's "1m".
func sizeLabel(name string) string {
	if n, ok := strings.CutSuffix(name, "m"); ok && slices.ContainsFunc(ScaleShapes, func(s Shape) bool { return s.Name == name }) {
		return n + "M"
	}
	return name
}

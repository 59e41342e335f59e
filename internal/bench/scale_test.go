package bench

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseScale(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Shape
		err  string
	}{
		{in: "", want: nil},
		{in: "10k,100k,300k,1m", want: ScaleShapes},
		{in: " 1M , 10K", want: []Shape{ScaleShapes[3], ScaleShapes[0]}},
		{in: "50x200@5s", want: []Shape{{Name: "50x200@5s", Targets: 50, Series: 200, Interval: 5 * time.Second}}},
		{in: "10k,10k", err: `size "10k" listed twice`},
		{in: "2m", err: `size "2m": unknown name; allowed: 10k, 100k, 300k, 1m or TARGETSxSERIES@INTERVAL`},
		{in: "50@5s", err: "want TARGETSxSERIES before @"},
		{in: "0x10@5s", err: `targets must be a whole number of at least 1, got "0"`},
		{in: "10xa@5s", err: `series per target must be a whole number of at least 1, got "a"`},
		{in: "10x10@500ms", err: `interval must be a duration of at least 1s, got "500ms"`},
		{in: "10x10@soon", err: `got "soon"`},
		{in: "10000x1000@5s", err: "at most 5000000 series, got 10000000"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseScale(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestShapeWindow(t *testing.T) {
	require.Equal(t, 60*time.Second, ScaleShapes[0].Window(60*time.Second), "5 s × 6 < 60 s")
	require.Equal(t, 120*time.Second, ScaleShapes[3].Window(60*time.Second), "20 s × 6 > 60 s")
	require.Equal(t, 1_000_000, ScaleShapes[3].Nominal())
	for _, s := range ScaleShapes {
		require.NoError(t, Config{Targets: s.Targets, Series: s.Series, Interval: s.Interval, Duration: s.Window(0),
			Count: 1, NonOwnedTargets: 1, ShoalBin: "s", PrometheusBin: "p", Out: "o", Scale: []Shape{s}}.Validate(), s.Name)
	}
}

func TestValidateScale(t *testing.T) {
	c := Config{Targets: 1, Series: 1, Interval: time.Second, Duration: time.Second, Count: 1, NonOwnedTargets: 1,
		ShoalBin: "s", PrometheusBin: "p", Out: "o", Scale: ScaleShapes[:1], Runs: []string{RunShoal, RunFleet}}
	require.ErrorContains(t, c.Validate(), "a scale run compares only shoal,candidate,prometheus,vmagent, got runs shoal,fleet")
	c.Runs = []string{RunVMAgent}
	require.NoError(t, c.Validate())
	c.Scale, c.Plot = nil, "x.png"
	require.ErrorContains(t, c.Validate(), "a plot needs a scale run")
}

// scaleResult is a result at shape sh with the given CPU per million
// samples and RSS per series, for the series the shape names.
func scaleResult(sh Shape, run string, rep int, cpuPerM, rssPerSeries float64) ScaleResult {
	series := float64(sh.Nominal())
	window := sh.Window(60 * time.Second)
	samples := series * window.Seconds() / sh.Interval.Seconds()
	return ScaleResult{Shape: sh, Result: Result{
		Run: run, Rep: rep, Label: run + "-" + sh.Name, Agents: 1, Targets: sh.Targets,
		Interval: sh.Interval, Window: window,
		CPU:     time.Duration(cpuPerM * samples / 1e6 * float64(time.Second)),
		Samples: samples, Series: series,
		RSS: rssPerSeries * series, HWM: 1.5 * rssPerSeries * series, Anon: rssPerSeries * series / 2,
		BytesSent: 12 * samples, FarmCPU: window / 50, ReceiverCPU: window / 10,
	}}
}

func TestScaleRawLineRoundTrip(t *testing.T) {
	r := scaleResult(ScaleShapes[1], RunShoal, 2, 3.5, 980)
	line := r.RawLine()
	require.True(t, strings.HasPrefix(line, "SCALE size=100k series_per_target=1000 farm_cpu_s=1.200 receiver_cpu_s=6.000 farm_cores=0.020 receiver_cores=0.100 run=shoal rep=2 "), line)
	got, err := ParseScaleLine(line)
	require.NoError(t, err)
	require.Equal(t, r.Shape, Shape{Name: got.Shape.Name, Targets: got.Shape.Targets, Series: got.Shape.Series, Interval: got.Shape.Interval})
	require.Equal(t, r.Run, got.Run)
	require.Equal(t, r.Rep, got.Rep)
	require.Equal(t, r.Window, got.Window)
	require.InDelta(t, r.CPUPerMSample(), got.CPUPerMSample(), 1e-3)
	require.InDelta(t, r.RSSPerSeries(), got.RSSPerSeries(), 1e-6)
	require.InDelta(t, r.HWMPerSeries(), got.HWMPerSeries(), 1e-6)
	require.InDelta(t, r.AnonPerSeries(), got.AnonPerSeries(), 0.1)
	require.InDelta(t, r.Completeness(), got.Completeness(), 1e-9)
	require.InDelta(t, 0.02, got.FarmCores(), 1e-6)
	require.InDelta(t, 0.1, got.ReceiverCores(), 1e-6)

	for _, tc := range []struct{ line, err string }{
		{"RAW run=shoal", "not a SCALE line"},
		{"SCALE size=10k junk", `field "junk" is not key=value`},
		{strings.Replace(line, " cpu_s=", " cpu=", 1), "no field cpu_s"},
		{strings.Replace(line, "samples=", "samples=many", 1), `field samples: want a number, got "many`},
	} {
		_, err := ParseScaleLine(tc.line)
		require.ErrorContains(t, err, tc.err, tc.line)
	}
}

func TestReadScaleResults(t *testing.T) {
	a, b := scaleResult(ScaleShapes[0], RunShoal, 1, 4, 1500), scaleResult(ScaleShapes[0], RunVMAgent, 1, 2, 500)
	in := "shoal-bench ...\nSCALE-NOTE 2 cores\n" + a.RawLine() + "\nSKIP size=10k run=prometheus\n" + b.RawLine() + "\nCURVE 10k ...\n"
	got, err := ReadScaleResults(strings.NewReader(in))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, RunVMAgent, got[1].Run)
	_, err = ReadScaleResults(strings.NewReader("x\nSCALE size=1\n"))
	require.ErrorContains(t, err, "line 2: ")
}

// curveResults are 2 repetitions of 3 agents at 2 sizes; shoal costs 2×
// vmagent's RSS and 1.5× its CPU in both, and 0.5× Prometheus' RSS.
func curveResults() []ScaleResult {
	var rs []ScaleResult
	for _, sh := range ScaleShapes[:2] {
		for rep := 1; rep <= 2; rep++ {
			f := float64(rep) // repetition 2 costs twice repetition 1 for every agent
			rs = append(rs,
				scaleResult(sh, RunShoal, rep, 3*f, 1000*f),
				scaleResult(sh, RunPrometheus, rep, 4*f, 2000*f),
				scaleResult(sh, RunVMAgent, rep, 2*f, 500*f))
		}
	}
	return rs
}

func TestWriteScaleReport(t *testing.T) {
	var buf bytes.Buffer
	WriteScaleReport(&buf, curveResults(), 2)
	out := buf.String()
	require.Contains(t, out, "over 2 repetitions")
	// row returns the fields of the line that starts with these fields.
	row := func(prefix ...string) []string {
		for l := range strings.SplitSeq(out, "\n") {
			if f := strings.Fields(l); len(f) >= len(prefix) && slices.Equal(f[:len(prefix)], prefix) {
				return f
			}
		}
		t.Fatalf("no line %q in\n%s", prefix, out)
		return nil
	}
	// size, shape, interval, run, series, then cpu median (min–max), rss ...
	require.Equal(t, []string{"4.500", "(3.000–6.000)", "1500", "(1000–2000)", "2250", "(1500–3000)", "750", "(500–1000)",
		"1.000", "(1.000–1.000)", "0.090", "(0.060–0.120)", "0.020", "(0.020–0.020)", "0.100", "(0.100–0.100)"},
		row("CURVE", "100k", "100×1000", "5s", "shoal", "100000")[6:])
	require.Equal(t, "0.009", row("CURVE", "10k", "20×500", "5s", "shoal", "10000")[16], "agent cores at 10k")
	// The ratios are equal in both repetitions: no spread.
	require.Equal(t, []string{"1.500", "(1.500–1.500)", "2.000", "(2.000–2.000)", "2.000", "(2.000–2.000)", "2.000", "(2.000–2.000)"},
		row("CURVE-RATIO", "100k", "shoal/vmagent")[3:])
	require.Equal(t, []string{"0.750", "(0.750–0.750)", "0.500", "(0.500–0.500)"},
		row("CURVE-RATIO", "10k", "shoal/prometheus")[3:7])
}

func TestWriteScaleReportMissingRun(t *testing.T) {
	var rs []ScaleResult
	for _, r := range curveResults() {
		if r.Run != RunVMAgent {
			rs = append(rs, r)
		}
	}
	var buf bytes.Buffer
	WriteScaleReport(&buf, rs, 2)
	require.NotContains(t, buf.String(), "vmagent  ", "no vmagent row")
	require.NotContains(t, buf.String(), "shoal/vmagent  ", "no shoal/vmagent ratio")
	require.Contains(t, buf.String(), "shoal/prometheus")
}

func TestCurves(t *testing.T) {
	rs := curveResults()
	// Given largest first, the points come out by growing series.
	c := Curves(append(rs[6:], rs[:6]...))
	require.Len(t, c, 3)
	require.Equal(t, []CurvePoint{
		{Size: "10k", Series: 10_000, CPUPerMSample: 4.5, RSSPerSeries: 1500, HWMPerSeries: 2250},
		{Size: "100k", Series: 100_000, CPUPerMSample: 4.5, RSSPerSeries: 1500, HWMPerSeries: 2250},
	}, roundPoints(c[RunShoal]))
}

func roundPoints(ps []CurvePoint) []CurvePoint {
	r := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	for i := range ps {
		ps[i].CPUPerMSample, ps[i].RSSPerSeries, ps[i].HWMPerSeries = r(ps[i].CPUPerMSample), r(ps[i].RSSPerSeries), r(ps[i].HWMPerSeries)
	}
	return ps
}

func TestWritePlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curve.png")
	require.NoError(t, WritePlot(path, curveResults(), "2026-12-03, test"))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Greater(t, img.Bounds().Dx(), 1000)

	require.ErrorContains(t, WritePlot(path, nil, "x"), "no results to plot")
}

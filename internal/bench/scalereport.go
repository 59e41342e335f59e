package bench

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// FarmCores is the farm's (this process') average CPU use during the
// window, in cores.
func (r Result) FarmCores() float64 { return div(r.FarmCPU.Seconds(), r.Window.Seconds()) }

// ReceiverCores is the receiver's average CPU use during the window.
func (r Result) ReceiverCores() float64 { return div(r.ReceiverCPU.Seconds(), r.Window.Seconds()) }

// scaleMetrics are the rows of the cost curve, per size and agent.
var scaleMetrics = []metric{
	{"cpu_s/Msample", 3, Result.CPUPerMSample, true},
	{"rss_B/series", 0, Result.RSSPerSeries, true},
	{"hwm_B/series", 0, Result.HWMPerSeries, true},
	{"anon_B/series", 0, Result.AnonPerSeries, true},
	{"completeness", 3, Result.Completeness, false},
	{"agent_cores", 3, Result.Cores, false},
	{"farm_cores", 3, Result.FarmCores, false},
	{"receiver_cores", 3, Result.ReceiverCores, false},
}

// scaleComparisons are the ratios of the cost curve.
var scaleComparisons = []Comparison{
	{Name: "shoal/vmagent", A: RunShoal, B: RunVMAgent},
	{Name: "shoal/prometheus", A: RunShoal, B: RunPrometheus},
	{Name: "candidate/shoal", A: RunCandidate, B: RunShoal},
	{Name: "candidate/vmagent", A: RunCandidate, B: RunVMAgent},
}

// scaleGroup is the results of one size, per run, indexed by repetition.
type scaleGroup struct {
	shape Shape
	runs  map[string][]*Result
}

// groupScale groups results by size, in the order the sizes first appear,
// then by run and repetition 1..reps.
func groupScale(results []ScaleResult, reps int) []scaleGroup {
	var out []scaleGroup
	for _, r := range results {
		i := slices.IndexFunc(out, func(g scaleGroup) bool { return g.shape.Name == r.Shape.Name })
		if i < 0 {
			out = append(out, scaleGroup{shape: r.Shape, runs: map[string][]*Result{}})
			i = len(out) - 1
		}
		if r.Rep < 1 || r.Rep > reps {
			continue
		}
		g := out[i]
		if g.runs[r.Run] == nil {
			g.runs[r.Run] = make([]*Result, reps)
		}
		res := r.Result
		g.runs[r.Run][r.Rep-1] = &res
	}
	return out
}

// medianSeries is the median of the active series the receiver counted.
func medianSeries(rs []*Result) float64 {
	return Summarize(values(rs, func(r Result) float64 { return r.Series })).Median
}

// WriteScaleReport writes the cost curve: per size and agent the medians
// (with their range over reps repetitions) of CPU per million samples,
// memory per series, completeness and the CPU of the agent, the farm and
// the receiver; then per size the ratios of shoal to the others, computed
// per repetition.
func WriteScaleReport(w io.Writer, results []ScaleResult, reps int) {
	groups := groupScale(results, reps)
	fmt.Fprintf(w, "CURVE-NOTE median (min–max) over %d repetitions; one agent at a time against the farm; series as counted at the receiver; farm_cores is this process (the farm), receiver_cores the receiver\n", reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "CURVE size\ttargets×series\tinterval\trun\tseries")
	for _, m := range scaleMetrics {
		fmt.Fprintf(tw, "\t%s", m.name)
	}
	fmt.Fprintln(tw)
	for _, g := range groups {
		for _, run := range scaleAllowed {
			rs := g.runs[run]
			if rs == nil {
				continue
			}
			fmt.Fprintf(tw, "CURVE %s\t%d×%d\t%v\t%s\t%.0f", g.shape.Name, g.shape.Targets, g.shape.Series, g.shape.Interval, run, medianSeries(rs))
			for _, m := range scaleMetrics {
				fmt.Fprintf(tw, "\t%s", formatSpread(Summarize(values(rs, m.of)), m.digits))
			}
			fmt.Fprintln(tw)
		}
	}
	_ = tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "CURVE-RATIO size\tratio")
	for _, m := range scaleMetrics {
		if m.ratio {
			fmt.Fprintf(tw, "\t%s", m.name)
		}
	}
	fmt.Fprintln(tw)
	for _, g := range groups {
		for _, c := range scaleComparisons {
			if g.runs[c.A] == nil || g.runs[c.B] == nil {
				continue
			}
			fmt.Fprintf(tw, "CURVE-RATIO %s\t%s", g.shape.Name, c.Name)
			for _, m := range scaleMetrics {
				if m.ratio {
					s := Summarize(Ratios(values(g.runs[c.A], m.of), values(g.runs[c.B], m.of)))
					fmt.Fprintf(tw, "\t%s", formatSpread(s, 3))
				}
			}
			fmt.Fprintln(tw)
		}
	}
	_ = tw.Flush()
}

// CurvePoint is one agent's medians at one size.
type CurvePoint struct {
	Size                                      string
	Series                                    float64 // active series at the receiver
	CPUPerMSample, RSSPerSeries, HWMPerSeries float64
}

// Curves returns each run's points, by growing series.
func Curves(results []ScaleResult) map[string][]CurvePoint {
	reps := 0
	for _, r := range results {
		reps = max(reps, r.Rep)
	}
	out := map[string][]CurvePoint{}
	for _, g := range groupScale(results, reps) {
		for run, rs := range g.runs {
			out[run] = append(out[run], CurvePoint{
				Size:          g.shape.Name,
				Series:        medianSeries(rs),
				CPUPerMSample: Summarize(values(rs, Result.CPUPerMSample)).Median,
				RSSPerSeries:  Summarize(values(rs, Result.RSSPerSeries)).Median,
				HWMPerSeries:  Summarize(values(rs, Result.HWMPerSeries)).Median,
			})
		}
	}
	for _, ps := range out {
		slices.SortFunc(ps, func(a, b CurvePoint) int { return cmp.Compare(a.Series, b.Series) })
	}
	return out
}

// ReadScaleResults reads the SCALE lines of a benchmark's output (its
// raw.txt), ignoring every other line.
func ReadScaleResults(r io.Reader) ([]ScaleResult, error) {
	var out []ScaleResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "SCALE ") {
			continue
		}
		res, err := ParseScaleLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// ParseScaleLine parses what ScaleResult.RawLine writes.
func ParseScaleLine(line string) (ScaleResult, error) {
	rest, ok := strings.CutPrefix(line, "SCALE ")
	if !ok {
		return ScaleResult{}, fmt.Errorf("not a SCALE line: %q", line)
	}
	kv := map[string]string{}
	for f := range strings.FieldsSeq(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return ScaleResult{}, fmt.Errorf("field %q is not key=value", f)
		}
		kv[k] = v
	}
	p := scaleParser{kv: kv}
	var s ScaleResult
	s.Shape.Name = p.str("size")
	s.Shape.Series = int(p.num("series_per_target"))
	s.Run, s.Label = p.str("run"), p.str("label")
	s.Rep, s.Agents, s.Targets = int(p.num("rep")), int(p.num("agents")), int(p.num("targets"))
	s.Shape.Targets = s.Targets
	s.Interval = p.seconds("interval_s")
	s.Shape.Interval = s.Interval
	s.Window = p.seconds("window_s")
	s.CPU = p.seconds("cpu_s")
	s.FarmCPU, s.ReceiverCPU = p.seconds("farm_cpu_s"), p.seconds("receiver_cpu_s")
	s.Samples, s.Series = p.num("samples"), p.num("series")
	s.RSS, s.HWM, s.BytesSent = p.num("rss_bytes"), p.num("hwm_bytes"), p.num("bytes_sent")
	s.Anon = p.num("anon_b_per_series") * s.Series
	if p.err != nil {
		return ScaleResult{}, p.err
	}
	return s, nil
}

// scaleParser reads the fields of one line, keeping the first error.
type scaleParser struct {
	kv  map[string]string
	err error
}

func (p *scaleParser) str(k string) string {
	v, ok := p.kv[k]
	if !ok && p.err == nil {
		p.err = fmt.Errorf("no field %s", k)
	}
	return v
}

func (p *scaleParser) num(k string) float64 {
	v := p.str(k)
	if p.err != nil {
		return 0
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(x, 0) {
		p.err = fmt.Errorf("field %s: want a number, got %q", k, v)
		return 0
	}
	return x
}

func (p *scaleParser) seconds(k string) time.Duration {
	return time.Duration(math.Round(p.num(k) * float64(time.Second)))
}

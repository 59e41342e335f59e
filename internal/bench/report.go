package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Run names, in the order of a repetition.
const (
	RunShoal      = "shoal"
	RunPrometheus = "prometheus"
	RunVMAgent    = "vmagent"
	RunFleet      = "fleet"
	// RunNonOwned measures memory per discovered-but-not-owned target; it
	// runs once, after the repetitions.
	RunNonOwned = "nonowned"
	// RunReplay measures, for each single agent, the delivery of a
	// receiver outage's backlog (ReplayRuns, Config.ReplayOutage); it runs
	// Count times after the repeated runs.
	RunReplay = "replay"
	// RunCandidate is a second shoal agent, Config.CandidateBin with
	// Config.CandidateArgs, run like RunShoal next to it: a change is
	// measured against the agent without it in the same repetition. It runs
	// only when listed.
	RunCandidate = "candidate"
)

// RepeatedRuns are the runs of a repetition, in order.
var RepeatedRuns = []string{RunShoal, RunPrometheus, RunVMAgent, RunFleet}

// Result is what one run of one repetition measured over its steady window.
// For a fleet, CPU, RSS, HWM and BytesSent are summed over the agents.
type Result struct {
	Run      string
	Rep      int
	Label    string // the run external label's value at the receiver
	Agents   int
	Targets  int
	Interval time.Duration
	Window   time.Duration
	// CPU is user plus system time during the window.
	CPU time.Duration
	// Samples arrived at the receiver with a timestamp in the window.
	Samples float64
	// Series is how many series those samples belong to.
	Series float64
	// RSS is the median, over one-second readings during the window, of
	// the resident memory; HWM is the peak resident memory (VmHWM) at the
	// window's end, start-up included. Bytes.
	RSS, HWM float64
	// Anon is the median of RSS's anonymous part (heap, stacks): RSS less
	// the resident pages of the binary, which differ in size between
	// agents but do not grow with series. Bytes.
	Anon float64
	// BytesSent is what remote write sent during the window, as the
	// process counts it (after compression).
	BytesSent float64
	// FarmCPU is the CPU time of the benchmark's own process during the
	// window, which serves the farm's targets; ReceiverCPU the receiver's.
	// They show that neither limited the run.
	FarmCPU, ReceiverCPU time.Duration
}

// CPUPerMSample is CPU seconds per million delivered samples.
func (r Result) CPUPerMSample() float64 { return div(r.CPU.Seconds()*1e6, r.Samples) }

// RSSPerSeries is steady resident bytes per active series.
func (r Result) RSSPerSeries() float64 { return div(r.RSS, r.Series) }

// AnonPerSeries is steady anonymous resident bytes per active series.
func (r Result) AnonPerSeries() float64 { return div(r.Anon, r.Series) }

// HWMPerSeries is peak resident bytes per active series.
func (r Result) HWMPerSeries() float64 { return div(r.HWM, r.Series) }

// BytesPerSample is remote-write bytes per delivered sample.
func (r Result) BytesPerSample() float64 { return div(r.BytesSent, r.Samples) }

// Cores is the average CPU use during the window, in cores.
func (r Result) Cores() float64 { return div(r.CPU.Seconds(), r.Window.Seconds()) }

// SamplesPerSecond is the delivered sample rate.
func (r Result) SamplesPerSecond() float64 { return div(r.Samples, r.Window.Seconds()) }

// Completeness is delivered samples over what one sample per series per
// interval would give: about 1 when nothing was lost.
func (r Result) Completeness() float64 {
	return div(r.Samples, r.Series*r.Window.Seconds()/r.Interval.Seconds())
}

func div(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// RawLine is one machine-readable line per result.
func (r Result) RawLine() string {
	return fmt.Sprintf("RAW run=%s rep=%d label=%s agents=%d targets=%d interval_s=%g window_s=%g "+
		"cpu_s=%.3f samples=%.0f series=%.0f rss_bytes=%.0f hwm_bytes=%.0f bytes_sent=%.0f "+
		"cpu_s_per_msample=%.4f rss_b_per_series=%.1f hwm_b_per_series=%.1f anon_b_per_series=%.1f bytes_per_sample=%.3f cores=%.3f completeness=%.4f",
		r.Run, r.Rep, r.Label, r.Agents, r.Targets, r.Interval.Seconds(), r.Window.Seconds(),
		r.CPU.Seconds(), r.Samples, r.Series, r.RSS, r.HWM, r.BytesSent,
		r.CPUPerMSample(), r.RSSPerSeries(), r.HWMPerSeries(), r.AnonPerSeries(), r.BytesPerSample(), r.Cores(), r.Completeness())
}

// metric is one row of the report.
type metric struct {
	name   string
	digits int
	of     func(Result) float64
	// ratio tells whether comparing runs by this metric means anything.
	ratio bool
}

var metrics = []metric{
	{"cpu_s/Msample", 3, Result.CPUPerMSample, true},
	{"rss_B/series", 0, Result.RSSPerSeries, true},
	{"anon_B/series", 0, Result.AnonPerSeries, true},
	{"hwm_B/series", 0, Result.HWMPerSeries, true},
	{"bytes/sample", 2, Result.BytesPerSample, true},
	{"cores", 3, Result.Cores, false},
	{"samples/s", 0, Result.SamplesPerSecond, false},
	{"series", 0, func(r Result) float64 { return r.Series }, false},
	{"completeness", 3, Result.Completeness, false},
}

// formatSpread renders "median (min–max)", or the median alone when there
// is one measurement, or "-" when there is none.
func formatSpread(s Spread, digits int) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', digits, 64) }
	switch s.N {
	case 0:
		return "-"
	case 1:
		return f(s.Median)
	default:
		return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
	}
}

// byRep returns each run's results indexed by repetition 1..reps (missing
// ones are nil).
func byRep(results []Result, reps int) map[string][]*Result {
	out := map[string][]*Result{}
	for i := range results {
		r := &results[i]
		if r.Rep < 1 || r.Rep > reps {
			continue
		}
		if out[r.Run] == nil {
			out[r.Run] = make([]*Result, reps)
		}
		out[r.Run][r.Rep-1] = r
	}
	return out
}

// values returns m of each repetition's result, NaN where one is missing.
func values(rs []*Result, m func(Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = math.NaN()
		if r != nil {
			out[i] = m(*r)
		}
	}
	return out
}

// Comparison is a ratio between two runs, computed per repetition.
type Comparison struct {
	Name string
	A, B string // run names: A / B
}

// Comparisons are the ratios the report prints.
var Comparisons = []Comparison{
	{Name: "shoal/prometheus", A: RunShoal, B: RunPrometheus},
	{Name: "shoal/vmagent", A: RunShoal, B: RunVMAgent},
	{Name: "fleet/shoal", A: RunFleet, B: RunShoal},
	{Name: "candidate/shoal", A: RunCandidate, B: RunShoal},
	{Name: "candidate/vmagent", A: RunCandidate, B: RunVMAgent},
}

// WriteReport writes the table of medians with their spread (one column per
// run that has results), the ratios between runs of the same repetition,
// and the fleet's per-agent efficiency.
func WriteReport(w io.Writer, results []Result, reps int) {
	br := byRep(results, reps)
	var runs []string
	for _, r := range append(slices.Clone(RepeatedRuns), RunCandidate) {
		if br[r] != nil {
			runs = append(runs, r)
		}
	}

	fmt.Fprintf(w, "NOTE median (min–max) over %d repetitions; a fleet pools its agents (CPU, memory and bytes summed over them, per sample or series of all); cores, samples/s and series are totals\n", reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "TABLE metric")
	for _, r := range runs {
		fmt.Fprintf(tw, "\t%s", r)
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "TABLE agents×targets")
	for _, r := range runs {
		desc := "-"
		for _, res := range br[r] {
			if res != nil {
				desc = fmt.Sprintf("%d×%d", res.Agents, res.Targets)
				break
			}
		}
		fmt.Fprintf(tw, "\t%s", desc)
	}
	fmt.Fprintln(tw)
	for _, m := range metrics {
		fmt.Fprintf(tw, "TABLE %s", m.name)
		for _, r := range runs {
			fmt.Fprintf(tw, "\t%s", formatSpread(Summarize(values(br[r], m.of)), m.digits))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()

	var cmps []Comparison
	for _, c := range Comparisons {
		if br[c.A] != nil && br[c.B] != nil {
			cmps = append(cmps, c)
		}
	}
	if len(cmps) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "RATIO metric")
		for _, c := range cmps {
			fmt.Fprintf(tw, "\t%s", c.Name)
		}
		fmt.Fprintln(tw)
		for _, m := range metrics {
			if !m.ratio {
				continue
			}
			fmt.Fprintf(tw, "RATIO %s", m.name)
			for _, c := range cmps {
				s := Summarize(Ratios(values(br[c.A], m.of), values(br[c.B], m.of)))
				fmt.Fprintf(tw, "\t%s", formatSpread(s, 3))
			}
			fmt.Fprintln(tw)
		}
		_ = tw.Flush()
	}
	if br[RunShoal] != nil && br[RunFleet] != nil {
		eff := Summarize(Ratios(values(br[RunShoal], Result.CPUPerMSample), values(br[RunFleet], Result.CPUPerMSample)))
		fmt.Fprintf(w, "\nEFFICIENCY fleet per-agent CPU efficiency (single-agent cpu/sample ÷ fleet cpu/sample): %s\n", formatSpread(eff, 3))
	}
}

// joinRuns is the inverse of ParseRuns, for messages.
func joinRuns(runs []string) string { return strings.Join(runs, ",") }

// ParseRuns parses a comma-separated list of run names; empty means the
// repeated runs. Unknown names and duplicates are errors.
func ParseRuns(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(RepeatedRuns), nil
	}
	valid := append(slices.Clone(RepeatedRuns), RunCandidate, RunReplay, RunNonOwned)
	var out []string
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(valid, name) {
			return nil, fmt.Errorf("unknown run %q, allowed: %s", name, joinRuns(valid))
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("run %q listed twice", name)
		}
		out = append(out, name)
	}
	// Repeated runs keep their interleaving order whatever the list's.
	slices.SortStableFunc(out, func(a, b string) int { return runOrder(a) - runOrder(b) })
	return out, nil
}

// rotate is the order of runs in repetition rep (from 1): rotated by one
// place per repetition, so that every run takes each place in turn. A
// fixed order biases a ratio with the machine's drift: the same binary run
// twice per repetition measured 1.077 (1.012–1.129) the CPU in second place
// (an A/A run at 100k series, the load of other jobs rising), as much as a
// change being measured.
func rotate(runs []string, rep int) []string {
	if len(runs) == 0 {
		return nil
	}
	k := (rep - 1) % len(runs)
	return append(slices.Clone(runs[k:]), runs[:k]...)
}

// runOrder places a candidate right after the shoal run it is compared
// with.
func runOrder(name string) int {
	if name == RunCandidate {
		return slices.Index(RepeatedRuns, RunShoal) + 1
	}
	if i := slices.Index(RepeatedRuns, name); i >= 0 {
		if i > slices.Index(RepeatedRuns, RunShoal) {
			i++
		}
		return i
	}
	return len(RepeatedRuns) + 1
}

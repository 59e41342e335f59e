package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// result makes a result whose CPU per million samples is cpuPerM and whose
// RSS per series is rssPerSeries.
func result(run string, rep, agents int, cpuPerM, rssPerSeries float64) Result {
	const samples, series = 1_200_000, 100_000
	return Result{
		Run: run, Rep: rep, Label: run + "-" + string(rune('0'+rep)), Agents: agents, Targets: 100 * agents,
		Interval: 5 * time.Second, Window: 60 * time.Second,
		CPU:     time.Duration(cpuPerM * samples / 1e6 * float64(time.Second)),
		Samples: samples, Series: series,
		RSS: rssPerSeries * series, HWM: 2 * rssPerSeries * series, Anon: rssPerSeries * series * 3 / 4,
		BytesSent: 2 * samples,
	}
}

func TestResultDerived(t *testing.T) {
	r := result(RunShoal, 1, 1, 2.5, 1000)
	require.InDelta(t, 2.5, r.CPUPerMSample(), 1e-9)
	require.InDelta(t, 1000, r.RSSPerSeries(), 1e-9)
	require.InDelta(t, 2000, r.HWMPerSeries(), 1e-9)
	require.InDelta(t, 750, r.AnonPerSeries(), 1e-9)
	require.InDelta(t, 2, r.BytesPerSample(), 1e-9)
	require.InDelta(t, 3.0/60, r.Cores(), 1e-9)
	require.InDelta(t, 20000, r.SamplesPerSecond(), 1e-9)
	require.InDelta(t, 1, r.Completeness(), 1e-9, "12 intervals of 100,000 series")
	require.True(t, math.IsNaN(Result{}.CPUPerMSample()))

	line := r.RawLine()
	require.True(t, strings.HasPrefix(line, "RAW run=shoal rep=1 label=shoal-1 agents=1 targets=100 interval_s=5 window_s=60 cpu_s=3.000 samples=1200000 series=100000 "), line)
	require.Contains(t, line, " cpu_s_per_msample=2.5000 rss_b_per_series=1000.0 ")
	require.Contains(t, line, " hwm_b_per_series=2000.0 anon_b_per_series=750.0 ")
	require.True(t, strings.HasSuffix(line, " completeness=1.0000"), line)
}

func TestWriteReport(t *testing.T) {
	var rs []Result
	for rep := 1; rep <= 3; rep++ {
		f := float64(rep)
		rs = append(rs,
			result(RunShoal, rep, 1, 1*f, 1000),
			result(RunPrometheus, rep, 1, 2*f, 2000+f),
			result(RunFleet, rep, 3, 1.25*f, 900),
		)
	}
	// The vmagent run of repetition 2 failed: its ratio has two pairs.
	rs = append(rs, result(RunVMAgent, 1, 1, 4, 500), result(RunVMAgent, 3, 1, 12, 500))

	var b bytes.Buffer
	WriteReport(&b, rs, 3)
	out := b.String()
	t.Log("\n" + out)
	row := func(prefix string) []string {
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, prefix+" ") {
				return strings.Fields(strings.TrimPrefix(l, prefix))
			}
		}
		t.Fatalf("no line %q in\n%s", prefix, out)
		return nil
	}
	require.Equal(t, []string{"metric", "shoal", "prometheus", "vmagent", "fleet"}, row("TABLE"))
	require.Equal(t, []string{"1×100", "1×100", "1×100", "3×300"}, row("TABLE agents×targets"))
	require.Equal(t, []string{"2.000", "(1.000–3.000)", "4.000", "(2.000–6.000)", "8.000", "(4.000–12.000)", "2.500", "(1.250–3.750)"},
		row("TABLE cpu_s/Msample"))
	require.Equal(t, []string{"1000", "(1000–1000)", "2002", "(2001–2003)", "500", "(500–500)", "900", "(900–900)"},
		row("TABLE rss_B/series"))
	require.Equal(t, []string{"metric", "shoal/prometheus", "shoal/vmagent", "fleet/shoal"}, row("RATIO"))
	require.Equal(t, []string{"0.500", "(0.500–0.500)", "0.250", "(0.250–0.250)", "1.250", "(1.250–1.250)"},
		row("RATIO cpu_s/Msample"))
	require.NotContains(t, out, "RATIO cores", "cores are not compared")
	require.Contains(t, out, "EFFICIENCY fleet per-agent CPU efficiency (single-agent cpu/sample ÷ fleet cpu/sample): 0.800 (0.800–0.800)\n")
}

func TestWriteReportOneRun(t *testing.T) {
	var b bytes.Buffer
	WriteReport(&b, []Result{result(RunShoal, 1, 1, 1, 1000)}, 1)
	out := b.String()
	require.Regexp(t, `(?m)^TABLE cpu_s/Msample +1.000$`, out)
	require.NotContains(t, out, "RATIO")
	require.NotContains(t, out, "EFFICIENCY")
}

func TestFormatSpread(t *testing.T) {
	require.Equal(t, "-", formatSpread(Summarize(nil), 2))
	require.Equal(t, "1.50", formatSpread(Summarize([]float64{1.5}), 2))
	require.Equal(t, "2 (1–3)", formatSpread(Summarize([]float64{1, 2, 3}), 0))
}

func TestParseRuns(t *testing.T) {
	got, err := ParseRuns("")
	require.NoError(t, err)
	require.Equal(t, RepeatedRuns, got)
	got, err = ParseRuns("nonowned, fleet,shoal")
	require.NoError(t, err)
	require.Equal(t, []string{RunShoal, RunFleet, RunNonOwned}, got, "interleaving order")
	got, err = ParseRuns("vmagent,candidate,prometheus,shoal")
	require.NoError(t, err)
	require.Equal(t, []string{RunShoal, RunCandidate, RunPrometheus, RunVMAgent}, got, "a candidate runs right after shoal")
	_, err = ParseRuns("shoal,alloy")
	require.ErrorContains(t, err, `unknown run "alloy", allowed: shoal,prometheus,vmagent,fleet,candidate,replay,nonowned`)
	_, err = ParseRuns("shoal,shoal")
	require.ErrorContains(t, err, "twice")
}

func TestRotate(t *testing.T) {
	runs := []string{RunShoal, RunCandidate, RunVMAgent}
	require.Equal(t, runs, rotate(runs, 1))
	require.Equal(t, []string{RunCandidate, RunVMAgent, RunShoal}, rotate(runs, 2))
	require.Equal(t, []string{RunVMAgent, RunShoal, RunCandidate}, rotate(runs, 3))
	require.Equal(t, runs, rotate(runs, 4))
	require.Equal(t, []string{RunShoal, RunCandidate, RunVMAgent}, runs, "the configured order is kept")
	require.Nil(t, rotate(nil, 2))
}

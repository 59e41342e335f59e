package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Sample is one raw sample of a target as the receiver stored it, with the
// agent that wrote it (the AgentLabel external label; empty without it).
type Sample struct {
	T     time.Time
	V     float64
	Agent string
}

// Samples are the raw samples of one metric by target instance, each
// target's merged from every agent's series in time order.
type Samples map[string][]Sample

// Collect reads the raw samples of selector (a vector selector such as
// `up{job="farm"}`) with timestamps in (start, end] from the receiver and
// merges them per instance label. It returns errors instead of failing the
// test, so it can run inside require.Eventually.
func Collect(ctx context.Context, r *testenv.Receiver, selector string, start, end time.Time) (Samples, error) {
	series, err := r.RawSamples(ctx, selector, start, end)
	if err != nil {
		return nil, err
	}
	out := Samples{}
	for _, s := range series {
		inst := s.Labels["instance"]
		for _, p := range s.Points {
			out[inst] = append(out[inst], Sample{T: p.T, V: p.V, Agent: s.Labels[AgentLabel]})
		}
	}
	for _, ss := range out {
		sortSamples(ss)
	}
	return out, nil
}

// sortSamples sorts by time; samples of one series are already in order and
// stay so.
func sortSamples(ss []Sample) {
	slices.SortStableFunc(ss, func(a, b Sample) int { return a.T.Compare(b.T) })
}

// Window is the time range (Start, End] samples were collected over, and the
// scrape interval they were taken at.
type Window struct {
	Start, End time.Time
	Interval   time.Duration
}

// Expected is how many scrapes of one target fit in the window: one per
// interval. A target scraped throughout has Expected samples, give or take
// one at the edges, depending on its scrape offset.
func (w Window) Expected() int { return int(w.End.Sub(w.Start) / w.Interval) }

// Thresholds that classify the distance between consecutive samples of one
// target, in scrape intervals. One scraper ticks exactly once per interval
// (Prometheus aligns its timestamps to the tick within milliseconds), so
// only a missed scrape or a change of owner moves them away from 1.
const (
	// gapFactor: a distance above 1.5 intervals means at least one scrape
	// is missing.
	gapFactor = 1.5
	// closeFactor: a distance under half an interval within one agent's
	// series means a second scrape where one belongs.
	closeFactor = 0.5
)

// Stats describe the samples of one target in a window.
type Stats struct {
	Instance string
	// Samples is the number of samples in the window.
	Samples int
	// Agents are the agents that wrote them, sorted.
	Agents []string
	// MaxGap is the largest distance between consecutive samples, counting
	// the window's start and end as samples, so that a target that stops
	// being scraped shows as a gap too.
	MaxGap time.Duration
	// Gaps counts distances above gapFactor intervals: missed scrapes.
	Gaps int
	// Overlaps counts samples taken while another agent was also scraping
	// the target: those inside the time span of another agent's samples.
	// A clean handoff, where one agent stops before the next starts, has
	// none.
	Overlaps int
	// Close counts pairs of consecutive samples of one agent closer than
	// closeFactor intervals: two scrapes where one belongs, as from two
	// agents writing to one series (without AgentLabel).
	Close int
	// Missing counts counter values skipped across a gap between
	// consecutive samples: scrapes whose sample never reached the receiver,
	// so that a slot has no sample (only for a counter that rises by 1 per
	// scrape, see farm).
	Missing int
	// Fenced counts counter values skipped without a gap: scrapes the target
	// served in a slot that has a sample from another scrape. During a
	// handoff the old and the new owner both scrape a target and the fence
	// writes one of the two, so these are expected and lose nothing.
	Fenced int
	// Repeats counts counter values that did not rise: a sample delivered
	// twice, or out of order.
	Repeats int
}

// Duplicates is the number of samples beyond one scrape per interval by one
// agent.
func (s Stats) Duplicates() int { return s.Overlaps + s.Close + s.Repeats }

// Analyze computes the stats of one target's merged samples. counter says
// whether the values are farm_scrapes_total, whose consecutive values must
// rise by exactly 1.
//
// Samples at or before w.Start are not analysed, but the last of them is
// the baseline of the counter: values lost between it and the first sample
// of the window count as Missing (collect from a few intervals before the
// window to see a gap at its start).
func Analyze(instance string, samples []Sample, w Window, counter bool) Stats {
	var base *Sample
	for len(samples) > 0 && !samples[0].T.After(w.Start) {
		base = &samples[0]
		samples = samples[1:]
	}
	st := Stats{Instance: instance, Samples: len(samples)}
	if base != nil && counter && len(samples) > 0 {
		st.countSkipped(*base, samples[0], w.Interval)
	}
	type span struct{ first, last time.Time }
	spans := map[string]span{}
	last := map[string]time.Time{}
	prevT := w.Start
	for i, s := range samples {
		sp, ok := spans[s.Agent]
		if !ok {
			sp.first = s.T
		}
		sp.last = s.T
		spans[s.Agent] = sp

		st.observeGap(s.T.Sub(prevT), w.Interval)
		prevT = s.T
		if t, ok := last[s.Agent]; ok && float64(s.T.Sub(t)) < closeFactor*float64(w.Interval) {
			st.Close++
		}
		last[s.Agent] = s.T
		if counter && i > 0 {
			st.countSkipped(samples[i-1], s, w.Interval)
		}
	}
	st.observeGap(w.End.Sub(prevT), w.Interval)

	st.Agents = slices.Sorted(maps.Keys(spans))
	if len(spans) > 1 {
		for _, s := range samples {
			for agent, sp := range spans {
				if agent != s.Agent && s.T.After(sp.first) && s.T.Before(sp.last) {
					st.Overlaps++
					break
				}
			}
		}
	}
	return st
}

// countSkipped compares consecutive counter samples a and b.
func (st *Stats) countSkipped(a, b Sample, interval time.Duration) {
	switch d := b.V - a.V; {
	case d < 1:
		st.Repeats++
	case d > 1:
		// Slots the time gap spans; the rest of the skipped values are
		// scrapes of slots that have a sample.
		slots := int(math.Round(float64(b.T.Sub(a.T))/float64(interval))) - 1
		lost := min(int(d)-1, max(slots, 0))
		st.Missing += lost
		st.Fenced += int(d) - 1 - lost
	}
}

func (st *Stats) observeGap(d, interval time.Duration) {
	st.MaxGap = max(st.MaxGap, d)
	if float64(d) > gapFactor*float64(interval) {
		st.Gaps++
	}
}

// AnalyzeAll analyzes every instance in want, including those without
// samples, sorted by instance.
func AnalyzeAll(s Samples, want []string, w Window, counter bool) []Stats {
	out := make([]Stats, 0, len(want))
	for _, inst := range want {
		out = append(out, Analyze(inst, s[inst], w, counter))
	}
	slices.SortFunc(out, func(a, b Stats) int { return cmp.Compare(a.Instance, b.Instance) })
	return out
}

// Summary adds up the stats of many targets.
type Summary struct {
	Targets, Samples                        int
	Gaps, Overlaps, Close, Missing, Repeats int
	MinSamples, MaxSamples                  int
	MaxGap                                  time.Duration
	MaxGapInstance                          string
}

// Summarize adds up stats.
func Summarize(stats []Stats) Summary {
	var sum Summary
	for i, st := range stats {
		sum.Targets++
		sum.Samples += st.Samples
		sum.Gaps += st.Gaps
		sum.Overlaps += st.Overlaps
		sum.Close += st.Close
		sum.Missing += st.Missing
		sum.Repeats += st.Repeats
		if i == 0 || st.Samples < sum.MinSamples {
			sum.MinSamples = st.Samples
		}
		sum.MaxSamples = max(sum.MaxSamples, st.Samples)
		if st.MaxGap > sum.MaxGap {
			sum.MaxGap, sum.MaxGapInstance = st.MaxGap, st.Instance
		}
	}
	return sum
}

// Duplicates is the total of Stats.Duplicates.
func (s Summary) Duplicates() int { return s.Overlaps + s.Close + s.Repeats }

// String formats the summary as greppable key=value pairs.
func (s Summary) String() string {
	return fmt.Sprintf("targets=%d samples_checked=%d samples_per_target=%d..%d gaps=%d max_gap_s=%.3f duplicates=%d overlaps=%d close=%d repeats=%d missing=%d",
		s.Targets, s.Samples, s.MinSamples, s.MaxSamples, s.Gaps, s.MaxGap.Seconds(), s.Duplicates(), s.Overlaps, s.Close, s.Repeats, s.Missing)
}

// IngestTimeout bounds how long samples may take to reach the receiver:
// remote write batches for a second, then retries with backoff (up to 5 s
// between attempts) while the receiver is down or restarting; the rest is
// headroom for a loaded machine.
const IngestTimeout = 90 * time.Second

// WaitIngested waits until every instance in want has a sample of selector
// later than after at the receiver. Remote write sends each series in order,
// so from then on the series' samples up to after are all there (or lost).
// It returns how long it waited, or, after IngestTimeout, an error listing
// the instances still behind.
func WaitIngested(ctx context.Context, r *testenv.Receiver, selector string, want []string, after time.Time) (time.Duration, error) {
	began := time.Now()
	err := Poll(ctx, IngestTimeout, 500*time.Millisecond, func(ctx context.Context) error {
		got, err := Collect(ctx, r, selector, after, time.Now())
		if err != nil {
			return err
		}
		var behind []string
		for _, inst := range want {
			if len(got[inst]) == 0 {
				behind = append(behind, inst)
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("%d of %d targets have no %s sample after %s at the receiver: %v",
				len(behind), len(want), selector, after.Format(time.RFC3339Nano), behind)
		}
		return nil
	})
	return time.Since(began), err
}

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// TestLeave measures a graceful leave: one of three agents gets SIGTERM.
//   - every target it scraped gets its first sample from another agent no
//     later than two scrape intervals (plus the scrape manager's reload
//     slack) after the leaver's process exited;
//   - targets of the other agents do not move with the leave (rendezvous
//     hashing, and the plan's overrides to them stay);
//   - the leader may then rebalance the two that stay, a hold later
//     (load-aware placement); once that has settled, over ten intervals,
//     no target is
//     scraped twice, none misses a scrape and no counter value is lost;
//   - across the handoff (from convergence, three intervals before SIGTERM,
//     to the end)
//     the largest gap between two samples of a target and the counter
//     values lost are reported, and no value may be lost: the leaver
//     flushes remote write before it exits.
func TestLeave(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 3, "leave", nil)
	ctx := t.Context()

	// Samples before convergence may come from owners of the cluster's
	// early states; measure from convergence (c.at) on, and let a few
	// intervals of steady scraping by the leaver pass first.
	//
	// The leaver is the agent that owns the most: a fixed one owns none of
	// 25 targets in about 1 run of 25,000 (the keys change with the ports).
	victim := mostLoaded(c.own, c.agents)
	moved := instancesOf(c.own, victim.Name)
	require.NotEmpty(t, moved, "ownership %s", c.own)
	sleepUntil(c.at.Add(3 * c.iv))
	sigterm := time.Now()
	require.NoError(t, victim.Stop())
	exited := time.Now()
	rest := others(c.agents, victim.Name)
	own2, err := WaitConverged(t.Context(), rest, c.healthy)
	require.NoError(t, err)
	converged := time.Since(exited)
	for inst, by := range c.own {
		if !slices.Contains(moved, inst) {
			require.Equal(t, by, own2[inst], "%s moved although its owner stayed", inst)
		}
	}
	// Under load-aware placement (the default) the leader then rebalances
	// the two that stay when the leave left them above the bound (say
	// 14/11): the window measures the placement that stays, and the
	// handoff window below covers that plan's moves too.
	own2, settled, err := WaitSettled(ctx, rest, c.healthy)
	require.NoError(t, err)

	w := Window{Start: time.Now().Add(c.iv), Interval: c.iv}
	w.End = w.Start.Add(measuredIntervals * c.iv)
	sleepUntil(w.End)
	after, err := Converged(ctx, rest, c.healthy)
	require.NoError(t, err, "the cluster changed during the window")
	require.Equal(t, own2, after, "ownership changed during the window")
	_, err = WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, w.End)
	require.NoError(t, err)

	// After convergence: exactly one scrape per interval.
	counter, err := Collect(ctx, c.env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, c.healthy, w, true)
	for _, st := range stats {
		require.Equal(t, own2[st.Instance], st.Agents, "%s: samples written by %v, /api/v1/targets says %v", st.Instance, st.Agents, own2[st.Instance])
		require.Zero(t, st.Duplicates(), "%s: duplicate scrapes after convergence: %+v", st.Instance, st)
		require.Zero(t, st.Gaps, "%s: gaps after convergence: %+v", st.Instance, st)
		require.Zero(t, st.Missing, "%s: counter values missing after convergence: %+v", st.Instance, st)
	}

	// Across the handoff.
	hw := Window{Start: c.at, End: w.End, Interval: c.iv}
	all, err := Collect(ctx, c.env.Receiver, counterSelector, hw.Start, hw.End)
	require.NoError(t, err)
	hstats := AnalyzeAll(all, moved, hw, true)
	// reloadSlack is how long a new owner's scrape manager may hold a
	// changed target set before it starts the loops: shoal's scrape manager
	// applies target sets every scrape.DefaultDiscoveryReloadInterval (5 s).
	const reloadSlack = 5 * time.Second
	deadline := exited.Add(2*c.iv + reloadSlack)
	maxTakeover, maxLeaverAfterSigterm := -time.Hour, -time.Hour
	for _, st := range hstats {
		inst := st.Instance
		var lastLeaver, firstNew time.Time
		for _, s := range all[inst] {
			switch {
			case s.Agent == victim.Name:
				lastLeaver = s.T
			case firstNew.IsZero():
				firstNew = s.T
			}
		}
		require.False(t, lastLeaver.IsZero(), "%s: no sample from the leaver %s in the handoff window", inst, victim.Name)
		require.False(t, firstNew.IsZero(), "%s: never scraped after %s left", inst, victim.Name)
		require.False(t, firstNew.After(deadline), "%s: first scraped by %v at %v, %v after %s exited (limit %v)",
			inst, own2[inst], firstNew, firstNew.Sub(exited), victim.Name, 2*c.iv+reloadSlack)
		maxTakeover = max(maxTakeover, firstNew.Sub(exited))
		maxLeaverAfterSigterm = max(maxLeaverAfterSigterm, lastLeaver.Sub(sigterm))
		require.Zero(t, st.Missing, "%s: counter values lost in the handoff: %+v\n%s", inst, st, timeline(all[inst], sigterm, exited))
	}
	hsum := Summarize(hstats)
	// The leaver stops its loops without end-of-run staleness markers: its
	// targets live on at the peers, and a marker would end their series.
	stale, err := c.env.Receiver.StaleMarkers(ctx, hw.Start, hw.End, labels.MustNewMatcher(labels.MatchEqual, "job", DefaultJob))
	require.NoError(t, err)
	require.Empty(t, stale, "staleness markers written across the handoff")

	t.Logf("E2E test=leave agents=3 interval_s=%g moved_targets=%d stop_s=%.1f reconverge_s=%.1f leaver_last_sample_after_sigterm_s=%.3f max_takeover_after_exit_s=%.3f handoff_max_gap_s=%.3f handoff_gaps=%d handoff_overlaps=%d handoff_missing=%d ownership_before=%q ownership_after=%q %s",
		c.iv.Seconds(), len(moved), exited.Sub(sigterm).Seconds(), converged.Seconds(), maxLeaverAfterSigterm.Seconds(), maxTakeover.Seconds(),
		hsum.MaxGap.Seconds(), hsum.Gaps, hsum.Overlaps, hsum.Missing, c.own.String(), own2.String(), settled)
	t.Logf("E2E test=leave_after_convergence window_s=%g %s", w.End.Sub(w.Start).Seconds(), Summarize(stats))
}

// timeline renders a target's samples relative to the leaver's SIGTERM and
// exit, for failure messages.
func timeline(ss []Sample, sigterm, exited time.Time) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s v=%g by %s (sigterm%+.3fs exit%+.3fs)\n", s.T.Format("15:04:05.000"), s.V, s.Agent, s.T.Sub(sigterm).Seconds(), s.T.Sub(exited).Seconds())
	}
	return b.String()
}

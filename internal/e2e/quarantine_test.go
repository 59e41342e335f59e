package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Quarantine settings of TestQuarantineAfterTwoOwnersDie: a hold long
// enough to restart a killed agent inside it and see that it learns the
// hold from its peers.
const (
	quarantineWindow  = 2 * time.Minute
	quarantineBackoff = 45 * time.Second
)

// TestQuarantineAfterTwoOwnersDie: four agents; the owner of one target is
// killed (SIGKILL), then the agent that took it over.
//   - after the first death nothing is held: every target is scraped by
//     one agent (one crash makes its targets suspect only);
//   - after the second, the target is held, and with it exactly the other
//     targets that moved from the first dead agent to the second (neither
//     had a long scrape in flight to single one out): both survivors list
//     them in /api/v1/cluster/quarantine with the same end and the two dead
//     agents, export shoal_targets_quarantined and place them on nobody in
//     /api/v1/cluster/targets, and the receiver gets no sample of them
//     while they are held, while every other target keeps one scraper;
//   - the first victim, restarted inside the hold, is the target's ring
//     owner again but learns the hold from its peers' metadata and does not
//     scrape it;
//   - at the announced end they are scraped again, by one agent each,
//     from the end's slot on.
func TestQuarantineAfterTwoOwnersDie(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 4, "quar", func(_ *Env, o *AgentOptions) {
		o.ExtraArgs = append(o.ExtraArgs, "--cluster.quarantine-window="+quarantineWindow.String(),
			"--cluster.quarantine-backoff="+quarantineBackoff.String(), "--cluster.quarantine-max-backoff=5m")
	})
	ctx := t.Context()
	poison := c.healthy[0]
	byName := map[string]*Agent{}
	for _, a := range c.agents {
		byName[a.Name] = a
	}

	// The first owner dies.
	first := byName[c.own[poison][0]]
	require.NoError(t, first.Kill())
	alive := others(c.agents, first.Name)
	// Settled: load-aware placement rebalances the three that stay, and
	// which of first's targets second holds when it dies is what is held.
	own1, _, err := WaitSettled(ctx, alive, c.healthy)
	require.NoError(t, err, "one death must quarantine nothing")
	for _, a := range alive {
		q, err := a.Quarantine(ctx)
		require.NoError(t, err)
		require.True(t, q.Enabled)
		require.Empty(t, q.Targets, "%s holds targets after one death", a.Name)
	}
	second := byName[own1[poison][0]]
	// The targets a death of second strikes twice: those it took over
	// from first.
	var struck []string
	for _, inst := range instancesOf(c.own, first.Name) {
		if slices.Contains(own1[inst], second.Name) {
			struck = append(struck, inst)
		}
	}
	slices.Sort(struck)
	rest := slices.DeleteFunc(slices.Clone(c.healthy), func(s string) bool { return slices.Contains(struck, s) })
	// Let the new owner scrape it, as a poison target's next owner does
	// before it dies.
	require.NoError(t, waitSampleFrom(ctx, c, poison, second.Name, time.Now(), ConvergeTimeout))

	// The second owner dies.
	require.NoError(t, second.Kill())
	killed := time.Now()
	alive = others(alive, second.Name)
	var held []QuarantinedTarget
	require.NoError(t, Poll(ctx, ConvergeTimeout, 100*time.Millisecond, func(ctx context.Context) error {
		var seenHolds []QuarantinedTarget
		for _, a := range alive {
			q, err := a.Quarantine(ctx)
			if err != nil {
				return err
			}
			var insts []string
			for _, h := range q.Targets {
				insts = append(insts, instanceOf(h.URL))
			}
			slices.Sort(insts)
			if !slices.Equal(insts, struck) {
				return fmt.Errorf("%s holds %v, want %v", a.Name, insts, struck)
			}
			if seenHolds == nil {
				seenHolds = q.Targets
			} else if !slices.EqualFunc(seenHolds, q.Targets, func(x, y QuarantinedTarget) bool { return x.Key == y.Key && x.Until.Equal(y.Until) }) {
				return fmt.Errorf("the survivors end the holds at different instants: %+v and %+v", seenHolds, q.Targets)
			}
		}
		held = seenHolds
		return nil
	}))
	seen := time.Since(killed)
	until := held[0].Until
	for _, h := range held {
		require.ElementsMatch(t, []string{first.Name, second.Name}, h.FailedOwners)
		require.InDelta(t, quarantineBackoff.Seconds(), h.Until.Sub(h.Since).Seconds(), 2)
		until = later(until, h.Until)
	}
	for _, a := range alive {
		require.Equal(t, float64(len(struck)), metricValue(t, a, "shoal_targets_quarantined "), a.Name)
		ct, err := a.ClusterTargets(ctx)
		require.NoError(t, err)
		for _, tg := range ct.Targets {
			if slices.Contains(struck, tg.Labels["instance"]) {
				require.Empty(t, tg.Owners, "%s places the held target", a.Name)
				require.NotNil(t, tg.QuarantinedUntil)
			}
		}
	}

	// The first victim comes back: it is the target's ring owner again.
	require.NoError(t, first.Start(ctx))
	alive = append(alive, first)
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		if _, err := ConvergedHolding(ctx, alive, c.healthy, struck); err != nil {
			return err
		}
		q, err := first.Quarantine(ctx)
		if err != nil {
			return err
		}
		if !slices.EqualFunc(held, q.Targets, func(x, y QuarantinedTarget) bool { return x.Key == y.Key && x.Until.Equal(y.Until) }) {
			return fmt.Errorf("the restarted %s holds %+v, want the peers' holds %+v", first.Name, q.Targets, held)
		}
		return nil
	}))
	ct, err := first.ClusterTargets(ctx)
	require.NoError(t, err)
	for _, tg := range ct.Targets {
		if tg.Labels["instance"] == poison && len(struck) == 1 {
			require.Equal(t, []string{first.Name}, tg.RingOwners, "the restarted agent is the held target's ring owner again")
		}
	}
	require.True(t, time.Now().Before(until), "the restart took longer than the hold; lengthen quarantineBackoff")
	restarted := time.Now()

	// Until the end: nobody scrapes them, every other target is scraped.
	// (The owner's loop starts up to an interval and the filter's slack
	// before the end, as before any announced change; the fence writes
	// nothing before the end, which the receiver shows below. Another
	// target may be listed by two agents for a moment: a load-aware plan's
	// handoff starts the new owner's loop ahead, fenced.)
	for time.Now().Before(held[len(held)-1].Until.Add(-c.iv - 5*time.Second)) {
		own, err := Scraping(ctx, alive)
		require.NoError(t, err)
		for _, h := range struck {
			require.Empty(t, own[h], "%s scraped while held", h)
		}
		for _, r := range rest {
			require.NotEmpty(t, own[r], "%s scraped by nobody while another target is held", r)
		}
		time.Sleep(c.iv)
	}
	// The held targets' samples: none from a moment after the second
	// death (a scrape in flight) to the end of their holds.
	during, err := Collect(ctx, c.env.Receiver, counterSelector, killed.Add(c.iv), until)
	require.NoError(t, err)
	for _, h := range held {
		inst := instanceOf(h.URL)
		for _, smp := range during[inst] {
			require.False(t, smp.T.Before(h.Until), "sample of %s at %v while it was held until %v", inst, smp.T, h.Until)
		}
	}

	// Released at the announced end, to one agent, with nothing else moved.
	var own2 Ownership
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		var err error
		own2, err = Converged(ctx, alive, c.healthy)
		return err
	}))
	released := time.Since(until)
	require.NoError(t, waitSampleFrom(ctx, c, poison, own2[poison][0], until, ConvergeTimeout))
	_, err = WaitIngested(ctx, c.env.Receiver, counterSelector, struck, until)
	require.NoError(t, err)
	after, err := Collect(ctx, c.env.Receiver, counterSelector, killed.Add(c.iv), time.Now())
	require.NoError(t, err)
	var firstAfter time.Duration
	for _, h := range held {
		inst := instanceOf(h.URL)
		require.NotEmpty(t, after[inst], "%s never scraped after its hold", inst)
		d := after[inst][0].T.Sub(h.Until)
		require.GreaterOrEqual(t, d, -c.iv/2, "first sample of %s after the hold at %v, the hold ended at %v", inst, after[inst][0].T, h.Until)
		firstAfter = max(firstAfter, d)
	}
	for _, a := range alive {
		require.NoError(t, Poll(ctx, 10*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
			if v := metricValue(t, a, "shoal_targets_quarantined "); v != 0 {
				return fmt.Errorf("%s: shoal_targets_quarantined %v after the hold", a.Name, v)
			}
			return nil
		}))
	}
	t.Logf("E2E test=quarantine agents=4 targets=%d interval_s=%g killed=2 held=%d moved_first_to_second=%d held_seen_after_s=%.2f hold_s=%.0f restarted_victim_held_them=true samples_while_held=0 other_targets_unscraped=0 release_converged_after_end_s=%.2f max_first_sample_after_end_s=%.3f restart_before_end_s=%.1f",
		len(c.healthy), c.iv.Seconds(), len(held), len(struck), seen.Seconds(), held[0].Until.Sub(held[0].Since).Seconds(), released.Seconds(), firstAfter.Seconds(), until.Sub(restarted).Seconds())
}

// waitSampleFrom waits until the receiver holds a sample of instance
// written by agent with a timestamp after from.
func waitSampleFrom(ctx context.Context, c testCluster, instance, agent string, from time.Time, timeout time.Duration) error {
	sel := fmt.Sprintf(`farm_scrapes_total{job=%q,instance=%q}`, DefaultJob, instance)
	return Poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) error {
		ss, err := Collect(ctx, c.env.Receiver, sel, from, time.Now().Add(time.Minute))
		if err != nil {
			return err
		}
		for _, s := range ss[instance] {
			if s.Agent == agent {
				return nil
			}
		}
		return fmt.Errorf("no sample of %s from %s since %v", instance, agent, from)
	})
}

// instanceOf is the host:port of a scrape URL.
func instanceOf(url string) string {
	rest, _ := strings.CutPrefix(url, "http://")
	host, _, _ := strings.Cut(rest, "/")
	return host
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

package e2e

import (
	"context"
	"fmt"
	"maps"
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
//   - after the second, the target is held: both survivors list it in
//     /api/v1/cluster/quarantine with the same end and the two dead agents,
//     export shoal_targets_quarantined 1 and place it on nobody in
//     /api/v1/cluster/targets, and the receiver gets no sample of it while
//     it is held, while every other target keeps one scraper;
//   - the first victim, restarted inside the hold, is the target's ring
//     owner again but learns the hold from its peers' metadata and does not
//     scrape it;
//   - at the announced end the target is scraped again, by one agent,
//     from the end's slot on, and nothing else moved.
func TestQuarantineAfterTwoOwnersDie(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 4, "quar", func(_ *Env, o *AgentOptions) {
		o.ExtraArgs = append(o.ExtraArgs, "--cluster.quarantine-window="+quarantineWindow.String(),
			"--cluster.quarantine-backoff="+quarantineBackoff.String(), "--cluster.quarantine-max-backoff=5m")
	})
	ctx := t.Context()
	poison := c.healthy[0]
	rest := slices.DeleteFunc(slices.Clone(c.healthy), func(s string) bool { return s == poison })
	byName := map[string]*Agent{}
	for _, a := range c.agents {
		byName[a.Name] = a
	}

	// The first owner dies.
	first := byName[c.own[poison][0]]
	require.NoError(t, first.Kill())
	alive := others(c.agents, first.Name)
	own1, err := WaitConverged(ctx, alive, c.healthy)
	require.NoError(t, err, "one death must quarantine nothing")
	for _, a := range alive {
		q, err := a.Quarantine(ctx)
		require.NoError(t, err)
		require.True(t, q.Enabled)
		require.Empty(t, q.Targets, "%s holds targets after one death", a.Name)
	}
	second := byName[own1[poison][0]]
	// Let the new owner scrape it, as a poison target's next owner does
	// before it dies.
	require.NoError(t, waitSampleFrom(ctx, c, poison, second.Name, time.Now(), ConvergeTimeout))

	// The second owner dies.
	require.NoError(t, second.Kill())
	killed := time.Now()
	alive = others(alive, second.Name)
	var held QuarantinedTarget
	require.NoError(t, Poll(ctx, ConvergeTimeout, 100*time.Millisecond, func(ctx context.Context) error {
		var untils []time.Time
		for _, a := range alive {
			q, err := a.Quarantine(ctx)
			if err != nil {
				return err
			}
			if len(q.Targets) != 1 {
				return fmt.Errorf("%s holds %d targets, want 1", a.Name, len(q.Targets))
			}
			held = q.Targets[0]
			if !strings.Contains(held.URL, "//"+poison+"/") {
				return fmt.Errorf("%s holds %s, want %s", a.Name, held.URL, poison)
			}
			untils = append(untils, held.Until)
		}
		if !untils[0].Equal(untils[1]) {
			return fmt.Errorf("the survivors end the hold at different instants %v", untils)
		}
		return nil
	}))
	seen := time.Since(killed)
	require.ElementsMatch(t, []string{first.Name, second.Name}, held.FailedOwners)
	require.InDelta(t, quarantineBackoff.Seconds(), held.Until.Sub(held.Since).Seconds(), 2)
	for _, a := range alive {
		require.Equal(t, 1.0, metricValue(t, a, "shoal_targets_quarantined "), a.Name)
		ct, err := a.ClusterTargets(ctx)
		require.NoError(t, err)
		for _, tg := range ct.Targets {
			if tg.Labels["instance"] == poison {
				require.Empty(t, tg.Owners, "%s places the held target", a.Name)
				require.NotNil(t, tg.QuarantinedUntil)
			}
		}
	}

	// The first victim comes back: it is the target's ring owner again.
	require.NoError(t, first.Start(ctx))
	alive = append(alive, first)
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		if _, err := convergedHolding(ctx, alive, c.healthy, poison); err != nil {
			return err
		}
		q, err := first.Quarantine(ctx)
		if err != nil {
			return err
		}
		if len(q.Targets) != 1 || !q.Targets[0].Until.Equal(held.Until) {
			return fmt.Errorf("the restarted %s holds %+v, want the peers' hold until %v", first.Name, q.Targets, held.Until)
		}
		return nil
	}))
	ct, err := first.ClusterTargets(ctx)
	require.NoError(t, err)
	for _, tg := range ct.Targets {
		if tg.Labels["instance"] == poison {
			require.Equal(t, []string{first.Name}, tg.RingOwners, "the restarted agent is the held target's ring owner again")
		}
	}
	require.True(t, time.Now().Before(held.Until), "the restart took longer than the hold; lengthen quarantineBackoff")
	restarted := time.Now()

	// Until the end: nobody scrapes it, every other target has one owner.
	for time.Now().Before(held.Until.Add(-c.iv)) {
		own, err := Scraping(ctx, alive)
		require.NoError(t, err)
		require.NoError(t, own.Check(rest))
		require.Empty(t, own[poison], "%s scraped while held", poison)
		time.Sleep(c.iv)
	}
	// The held target's samples: none from a moment after the second
	// death (its scrape in flight) to the end of the hold.
	during, err := Collect(ctx, c.env.Receiver, fmt.Sprintf(`farm_scrapes_total{job=%q,instance=%q}`, DefaultJob, poison), killed.Add(c.iv), held.Until)
	require.NoError(t, err)
	require.Empty(t, during[poison], "samples of %s while it was held", poison)

	// Released at the announced end, to one agent, with nothing else moved.
	var own2 Ownership
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		var err error
		own2, err = Converged(ctx, alive, c.healthy)
		return err
	}))
	released := time.Since(held.Until)
	require.NoError(t, waitSampleFrom(ctx, c, poison, own2[poison][0], held.Until, ConvergeTimeout))
	after, err := Collect(ctx, c.env.Receiver, fmt.Sprintf(`farm_scrapes_total{job=%q,instance=%q}`, DefaultJob, poison), killed.Add(c.iv), time.Now())
	require.NoError(t, err)
	firstAfter := after[poison][0].T
	require.False(t, firstAfter.Before(held.Until.Add(-c.iv/2)), "first sample after the hold at %v, the hold ended at %v", firstAfter, held.Until)
	for _, a := range alive {
		require.NoError(t, Poll(ctx, 10*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
			if v := metricValue(t, a, "shoal_targets_quarantined "); v != 0 {
				return fmt.Errorf("%s: shoal_targets_quarantined %v after the hold", a.Name, v)
			}
			return nil
		}))
	}
	t.Logf("E2E test=quarantine agents=4 interval_s=%g killed=2 held_seen_after_s=%.2f hold_s=%.0f restarted_victim_held_it=true samples_while_held=0 other_targets_unscraped=0 release_converged_after_end_s=%.2f first_sample_after_end_s=%.3f restart_before_end_s=%.1f",
		c.iv.Seconds(), seen.Seconds(), held.Until.Sub(held.Since).Seconds(), released.Seconds(), firstAfter.Sub(held.Until).Seconds(), held.Until.Sub(restarted).Seconds())
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

// convergedHolding is Converged for a cluster that holds one target: every
// agent lists the same active members and agrees on the ring with no change
// announced ahead, places every other target alike and on nobody the held
// one, and the agents scrape exactly the others, each where it is placed.
func convergedHolding(ctx context.Context, agents []*Agent, want []string, held string) (Ownership, error) {
	names := make([]string, 0, len(agents))
	for _, a := range agents {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	var placed map[string][]string
	for _, a := range agents {
		m, err := a.Members(ctx)
		if err != nil {
			return nil, err
		}
		if active := m.Active(); !slices.Equal(active, names) || !m.Agree {
			return nil, fmt.Errorf("%s sees active members %v (agree=%v), want %v", a.Name, active, m.Agree, names)
		}
		for _, mm := range m.Members {
			if mm.Digest != m.Digest {
				return nil, fmt.Errorf("%s: a change is announced (%s advertises ring %s, the placement now is %s)", a.Name, mm.Name, mm.Digest, m.Digest)
			}
		}
		ct, err := a.ClusterTargets(ctx)
		if err != nil {
			return nil, err
		}
		owners := ct.Owners()
		if len(owners[held]) != 0 {
			return nil, fmt.Errorf("%s places the held %s on %v", a.Name, held, owners[held])
		}
		if placed == nil {
			placed = owners
		} else if !maps.EqualFunc(placed, owners, slices.Equal) {
			return nil, fmt.Errorf("%s places targets differently from %s", a.Name, agents[0].Name)
		}
	}
	own, err := Scraping(ctx, agents)
	if err != nil {
		return nil, err
	}
	if err := own.Check(slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == held })); err != nil {
		return nil, err
	}
	for inst, by := range own {
		if !slices.Equal(by, placed[inst]) {
			return nil, fmt.Errorf("%s is scraped by %v but placed on %v", inst, by, placed[inst])
		}
	}
	return own, nil
}

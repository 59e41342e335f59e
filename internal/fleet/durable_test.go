package fleet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestFleetDurable runs the receiver-outage and crash scenarios against the
// strict receiver: what the agents scraped is on disk until the receiver
// has it, so a restart, a rolling restart with or without a restart grace,
// or a kill inside an outage loses nothing (a kill at most the scrape being
// written), and no sample is refused as out of order. It also prints how
// fast the backlog goes out once the receiver is back (REPLAY lines).
func TestFleetDurable(t *testing.T) {
	p := currentPlan()
	lost := []figure{missing, rcvOutOfOrderSamples}
	scenarios := []scenario{
		// One agent restarted (SIGTERM, no grace: a handoff) inside the outage.
		{name: "outage-restart", run: outage(restartOne), none: lost},
		// Every agent restarted in turn inside the outage, without a grace:
		// targets move away and back while nobody can deliver; the new
		// owners hold their first samples until the old ones delivered.
		{name: "outage-rolling-handoff", run: outage(rollingRestart), none: lost},
		// SIGKILL inside the outage and a start on the same storage: at most
		// the scrape being written per target of the victim.
		{name: "outage-kill", runBound: outageKill, none: []figure{rcvOutOfOrderSamples}},
	}
	if *long {
		scenarios = append(scenarios,
			// The same rolling restart within a grace: nothing moves.
			scenario{name: "outage-rolling-restart", run: outage(rollingRestart), args: []string{"--cluster.restart-grace=10m"},
				none: append(slices.Clone(lost), moves, duplicates)},
			// An agent alone, killed and started again with the receiver up:
			// at most one slot per target, and no handoff lead (nobody else
			// could have scraped).
			scenario{name: "kill-alone", agents: 1, runBound: killAlone, none: []figure{rcvOutOfOrderSamples, duplicates}},
		)
	}
	runScenarios(t, p, scenarios)
}

// outage stops the receiver for the plan's outage, runs change a sixth of
// the way in, starts the receiver again and reports the replay.
func outage(change func(ctx context.Context, f *Fleet, p plan) error) func(ctx context.Context, f *Fleet, p plan) error {
	return func(ctx context.Context, f *Fleet, p plan) error {
		down := time.Now()
		f.Mark("receiver down")
		if err := f.Env.StopReceiver(); err != nil {
			return err
		}
		f.Sleep(p.Outage / 6)
		if err := change(ctx, f, p); err != nil {
			return err
		}
		f.Sleep(time.Until(down.Add(p.Outage)))
		f.Mark("receiver up")
		if err := f.Env.StartReceiver(); err != nil {
			return err
		}
		if err := f.replay(ctx, time.Since(down)); err != nil {
			return err
		}
		f.Settle(p.Settle)
		return nil
	}
}

func restartOne(ctx context.Context, f *Fleet, _ plan) error {
	victim := f.Agents[1]
	_, err := f.Step(ctx, "restart "+victim.Name+" while the receiver is down", func() error { return f.Restart(ctx, victim) })
	return err
}

// outageKill kills an agent inside the outage and starts it on its storage;
// the bound is one counter value per target it owned.
func outageKill(ctx context.Context, f *Fleet, p plan) (int, error) {
	victim := f.Agents[1]
	owned, err := victim.ActiveTargets(ctx)
	if err != nil {
		return 0, err
	}
	err = outage(func(ctx context.Context, f *Fleet, p plan) error {
		if _, err := f.Step(ctx, "kill "+victim.Name, func() error { return f.Kill(victim) }); err != nil {
			return err
		}
		f.Settle(p.Settle)
		_, err := f.Step(ctx, "start "+victim.Name+" again", func() error { return f.Rejoin(ctx, victim) })
		return err
	})(ctx, f, p)
	return len(owned), err
}

// killAlone kills the only agent with the receiver up and starts it again.
func killAlone(ctx context.Context, f *Fleet, p plan) (int, error) {
	a := f.Agents[0]
	// One step: with its only agent dead the fleet cannot converge, so the
	// start is part of the change.
	if _, err := f.Step(ctx, "kill "+a.Name+" and start it again", func() error {
		if err := f.Kill(a); err != nil {
			return err
		}
		return f.Rejoin(ctx, a)
	}); err != nil {
		return 0, err
	}
	f.Settle(p.Settle)
	return len(f.healthy), nil
}

// replay waits until every running agent has sent what it queued before
// the receiver came back, after an outage of d, and logs how many samples the receiver appended meanwhile, per
// second: the replay speed.
func (f *Fleet) replay(ctx context.Context, d time.Duration) error {
	appended := []testenv.Counter{{Name: "prometheus_tsdb_head_samples_appended_total"}}
	url := f.Env.Receiver.URL + "/metrics"
	var before map[testenv.Counter]float64
	if err := e2e.Poll(ctx, time.Minute, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		before, err = testenv.FetchCounters(ctx, f.obs.hc, url, appended)
		return err
	}); err != nil {
		return fmt.Errorf("receiver metrics: %w", err)
	}
	began := time.Now()
	// Caught up once every queue's oldest unsent sample (0: none) is newer
	// than the receiver's return.
	oldest := []testenv.Counter{{Name: "shoal_delivery_oldest_unsent_timestamp_seconds"}}
	err := e2e.Poll(ctx, 5*time.Minute, 100*time.Millisecond, func(ctx context.Context) error {
		for _, a := range f.obs.running() {
			v, err := testenv.FetchCounters(ctx, f.obs.hc, a.URL+"/metrics", oldest)
			if err != nil {
				return err
			}
			if t := v[oldest[0]]; t > 0 && t < float64(began.Unix()) {
				return fmt.Errorf("%s has samples from %s queued", a.Name, time.Unix(int64(t), 0))
			}
		}
		return nil
	})
	took := time.Since(began)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	after, err := testenv.FetchCounters(ctx, f.obs.hc, url, appended)
	if err != nil {
		return err
	}
	n := after[appended[0]] - before[appended[0]]
	f.logf("REPLAY scenario=%s outage_s=%.1f replay_s=%.2f samples=%.0f samples_per_s=%.0f", f.Name, d.Seconds(), took.Seconds(), n, n/max(took.Seconds(), 0.001))
	return nil
}

package fleet

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

var (
	long    = flag.Bool("fleet.long", false, "run the long fleet scenarios (5 s interval, 2 min outages; about 20 minutes)")
	skewAll = flag.Bool("fleet.skew-all", false, "run every clock-skew row at the short plan: ±5 s, ±60 s, and without a bound (what shoal did before it measured clocks; printed only)")
)

// plan sizes the scenarios: the short one runs in `go test ./...`, the long
// one in `make fleet`.
type plan struct {
	Options
	// Outage is how long the receiver or Consul is down.
	Outage time.Duration
	// Settle is how many intervals pass between two changes.
	Settle int
}

func currentPlan() plan {
	if *long {
		return plan{
			Options: Options{Targets: 60, Agents: 3, Interval: 5 * time.Second, FlushDeadline: 30 * time.Second},
			Outage:  2 * time.Minute,
			Settle:  4,
		}
	}
	return plan{
		Options: Options{Targets: 60, Agents: 3, Interval: 2 * time.Second, FlushDeadline: 10 * time.Second},
		Outage:  30 * time.Second,
		Settle:  2,
	}
}

// scenario is one row of TestFleet: a fleet change and the bars it meets.
type scenario struct {
	name string
	run  func(ctx context.Context, f *Fleet, p plan) error
	// args are extra shoal flags for every agent.
	args []string
	// needs says why the scenario cannot run here, or nil.
	needs func() error
	// none are the figures that must be zero.
	none []figure
	// maxGap, if set, bounds the largest gap between two samples.
	maxGap func(p plan) time.Duration
	// runBound, instead of run, also returns a bound on the counter values
	// lost (Missing) that it learnt while running.
	runBound func(ctx context.Context, f *Fleet, p plan) (int, error)
	// agents, if set, overrides the plan's number of agents.
	agents int
	// long: only with -fleet.long; skew: also with -fleet.skew-all.
	long, skew bool
	// check, if set, asserts further bars on the row.
	check func(t *testing.T, r Row, p plan)
}

// TestFleet runs every scenario on a fresh environment, one after another
// (timings are the point, so they do not share the two cores), and prints
// one table row each. Besides the invariants (the agents converge after
// each change, no agent panics, every target is scraped again at the end)
// it asserts the issue-5 bars that shoal meets, with bounds loose enough for
// a busy machine (README, "Fleet continuity"). Receiver outages are in
// TestFleetDurable.
func TestFleet(t *testing.T) {
	p := currentPlan()
	// planned: a fenced handoff writes every slot once, so a planned change
	// leaves no gap, no duplicate and nothing a strict receiver rejects. A
	// gap of one missed slot is tolerated (GapTargets) for a loaded
	// machine, not two (BigGapTargets).
	planned := []figure{bigGaps, duplicates, rcvOutOfOrderSamples, rcv400, staleMarkers}
	scenarios := []scenario{
		// scale-out-in: 3 to 5 agents one at a time, and back to 3.
		{name: "scale-out-in", run: scaleOutIn, none: planned},
		// Agents come back under the same name within the grace: nothing
		// moves. A target waits for its agent (up to a slot or two, as long
		// as the restart takes), so gaps are printed, not asserted.
		{name: "rolling-restart", run: rollingRestart, args: []string{"--cluster.restart-grace=30s"},
			none: []figure{moves, duplicates, rcvOutOfOrderSamples, staleMarkers}},
		// The same without a grace: every target moves away and back, fenced.
		{name: "rolling-handoff", run: rollingRestart, none: planned},
		// The killed agent's targets are scraped again within failure
		// detection (memberlist's suspicion, a few seconds) plus an interval.
		{name: "kill", run: kill, none: []figure{duplicates, staleMarkers},
			maxGap: func(p plan) time.Duration { return maxDetection + 2*p.Interval }},
		// Both sides scrape every target (duplicates and rejections of the
		// doubled samples are expected), none goes unscraped.
		{name: "partition", run: partition, needs: partitionSupported, none: []figure{bigGaps, staleMarkers}},
		// Consul going away changes nothing.
		{name: "consul-down", run: consulDown, none: []figure{moves, bigGaps, duplicates, staleMarkers}},
	}
	scenarios = append(scenarios, skewScenarios(planned)...)
	runScenarios(t, p, scenarios)
}

// runScenarios runs each scenario on a fresh environment, one after another
// (timings are the point, so they do not share the two cores), checks the
// invariants and its bars, and prints the table.
func runScenarios(t *testing.T, p plan, scenarios []scenario) {
	var rows []Row
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e2e.SkipUnlessIntegration(t)
			if sc.long && !*long && (!sc.skew || !*skewAll) {
				t.Skip("runs with -fleet.long")
			}
			if sc.needs != nil {
				if err := sc.needs(); err != nil {
					if os.Getenv(testenv.EnvRequireIntegration) != "" {
						t.Fatal(err)
					}
					t.Skip(err)
				}
			}
			o := p.Options
			if sc.agents > 0 {
				o.Agents = sc.agents
			}
			o.Args, o.Logf = sc.args, t.Logf
			ctx := t.Context()
			f, err := Start(ctx, testenv.ForTest(t), sc.name, o)
			require.NoError(t, err)
			var bound int
			if sc.runBound != nil {
				bound, err = sc.runBound(ctx, f, p)
			} else {
				err = sc.run(ctx, f, p)
			}
			require.NoError(t, err)
			row, err := f.Finish(ctx)
			require.NoError(t, err)
			rows = append(rows, row)
			// The invariants and the bars do not stop the test: each
			// failure is reported.
			assert.NoError(t, f.Crashes())
			assert.Empty(t, row.Unscraped, "%s: targets without a sample in the last two intervals", row.Scenario)
			if sc.maxGap != nil {
				if limit := sc.maxGap(p); row.MaxGap > limit {
					t.Errorf("%s: a target went %v without a sample, over its bound (%v)", row.Scenario, row.MaxGap, limit)
				}
			}
			if sc.runBound != nil && row.Missing > bound {
				t.Errorf("%s: %d counter values lost, over its bound (%d)", row.Scenario, row.Missing, bound)
			}
			noneOf(t, row, sc.none)
			if sc.check != nil {
				sc.check(t, row, p)
			}
		})
	}
	if len(rows) > 0 {
		t.Logf("fleet: %d targets, %d agents, interval %v, outages %v\n%s", p.Targets, p.Agents, p.Interval, p.Outage, Table(rows))
	}
}

// scaleOutIn grows the fleet from 3 to 5 agents one at a time, then shrinks
// it back to 3 (SIGTERM, newest first).
func scaleOutIn(ctx context.Context, f *Fleet, p plan) error {
	for range 2 {
		if _, err := f.Step(ctx, "add an agent", func() error { _, err := f.Add(ctx); return err }); err != nil {
			return err
		}
		f.Settle(p.Settle)
	}
	for range 2 {
		a := f.Agents[len(f.Agents)-1]
		if _, err := f.Step(ctx, "remove "+a.Name, func() error { return f.Remove(a) }); err != nil {
			return err
		}
		f.Settle(p.Settle)
	}
	return nil
}

// rollingRestart restarts every agent in turn (SIGTERM, then start again
// with the same name, ports and data directory).
func rollingRestart(ctx context.Context, f *Fleet, p plan) error {
	for _, a := range slices.Clone(f.Agents) {
		if _, err := f.Step(ctx, "restart "+a.Name, func() error { return f.Restart(ctx, a) }); err != nil {
			return err
		}
		f.Settle(p.Settle)
	}
	return nil
}

// kill kills one agent (SIGKILL), lets the others take over, and starts it
// again.
func kill(ctx context.Context, f *Fleet, p plan) error {
	victim := f.Agents[1]
	if _, err := f.Step(ctx, "kill "+victim.Name, func() error { return f.Kill(victim) }); err != nil {
		return err
	}
	f.Settle(2 * p.Settle)
	if _, err := f.Step(ctx, "start "+victim.Name+" again", func() error { return f.Rejoin(ctx, victim) }); err != nil {
		return err
	}
	f.Settle(p.Settle)
	return nil
}

// partition cuts gossip between two agents and the third, lets each side
// declare the other dead and re-shard (every target is then scraped on both
// sides), and heals it.
func partition(ctx context.Context, f *Fleet, p plan) error {
	a, b := slices.Clone(f.Agents[:2]), slices.Clone(f.Agents[2:])
	began := time.Now()
	f.Mark("partition")
	heal, err := f.Partition(a, b)
	if err != nil {
		return err
	}
	split, err := f.WaitSides(ctx, began, a, b)
	if err != nil {
		return err
	}
	f.logf("fleet: %s: sides split after %.1fs", f.Name, split.Seconds())
	f.Settle(2 * p.Settle)
	if _, err := f.Step(ctx, "heal the partition", heal); err != nil {
		return err
	}
	f.Settle(p.Settle)
	return nil
}

// consulDown stops Consul for the outage.
func consulDown(ctx context.Context, f *Fleet, p plan) error {
	f.Mark("consul down")
	if err := f.Env.StopConsul(); err != nil {
		return err
	}
	f.Sleep(p.Outage)
	if _, err := f.Step(ctx, "start consul again", f.Env.StartConsul); err != nil {
		return err
	}
	f.Settle(2 * p.Settle)
	return nil
}

// maxDetection bounds memberlist's failure detection on loopback with
// shoal's LAN timers (about 3 s measured, gossip BenchmarkConvergence).
const maxDetection = 8 * time.Second

// figure is one of a Row's counts that a bar wants to be zero.
type figure struct {
	what string
	of   func(Row) float64
}

var (
	moves                = figure{"ownership moves", func(r Row) float64 { return float64(r.Moves) }}
	bigGaps              = figure{"targets with more than one missed slot", func(r Row) float64 { return float64(r.BigGapTargets) }}
	duplicates           = figure{"duplicate samples", func(r Row) float64 { return float64(r.Duplicates) }}
	rcvOutOfOrderSamples = figure{"receiver out-of-order samples", func(r Row) float64 { return r.RcvOutOfOrder }}
	rcv400               = figure{"receiver 400 answers", func(r Row) float64 { return r.RcvRejected }}
	staleMarkers         = figure{"staleness markers", func(r Row) float64 { return float64(r.Stale) }}
	missing              = figure{"counter values lost", func(r Row) float64 { return float64(r.Missing) }}
)

// noneOf fails t for each figure of r that is not zero, in the order of
// their names.
func noneOf(t *testing.T, r Row, figures []figure) {
	t.Helper()
	for _, fig := range slices.SortedFunc(slices.Values(figures), func(a, b figure) int { return strings.Compare(a.what, b.what) }) {
		if n := fig.of(r); n != 0 {
			t.Errorf("%s: %g %s, want none (%s)", r.Scenario, n, fig.what, r.KeyValues())
		}
	}
}

// skewScenarios are the clock-skew rows: one agent of three with its clock
// off (--debug.clock-offset) joins two healthy ones, then a healthy one
// leaves. With the default --cluster.max-clock-offset (a quarter of the
// interval) the skewed agent is held out of the ring and says why: no
// target moves to it, none is scraped twice, the leave is fenced as usual.
// The unbounded rows (-fleet.long) let it in, as shoal did before it
// measured clocks, and are printed only: they show what the bound prevents.
// The short version runs +5 s and -60 s; -fleet.long adds -5 s, +60 s and
// the unbounded rows; -fleet.skew-all runs them all at the short plan.
func skewScenarios(planned []figure) []scenario {
	var out []scenario
	for _, tc := range []struct {
		offset time.Duration
		long   bool
	}{{5 * time.Second, false}, {-60 * time.Second, false}, {-5 * time.Second, true}, {60 * time.Second, true}} {
		out = append(out, scenario{
			name: fmt.Sprintf("clock-skew%+ds", int(tc.offset.Seconds())), long: tc.long, skew: true, agents: 2,
			run:  func(ctx context.Context, f *Fleet, p plan) error { return clockSkew(ctx, f, p, tc.offset, false) },
			none: planned, check: skewBars,
		})
	}
	// +60 s is not in this list: its start time and the instant it would
	// announce sit within milliseconds of what its peers accept (a minute,
	// gossip.ClaimSlack, beyond the handoff lead), so the row would measure
	// that race rather than the skew.
	for _, off := range []time.Duration{5 * time.Second, -5 * time.Second, -60 * time.Second} {
		out = append(out, scenario{
			name: fmt.Sprintf("clock-skew%+ds-unbounded", int(off.Seconds())), long: true, skew: true, agents: 2,
			args: []string{"--cluster.max-clock-offset=10m"},
			run:  func(ctx context.Context, f *Fleet, p plan) error { return clockSkew(ctx, f, p, off, true) },
		})
	}
	return out
}

// clockSkew adds an agent whose clock is offset off (joins: it is expected
// to become active, the bound allowing it), waits until its offset is
// reported, and then removes a healthy agent.
func clockSkew(ctx context.Context, f *Fleet, p plan, offset time.Duration, joins bool) error {
	var skewed *e2e.Agent
	if _, err := f.Step(ctx, "add an agent with its clock "+offset.String()+" off", func() (err error) {
		skewed, err = f.AddSkewed(ctx, offset, joins)
		return err
	}); err != nil {
		return err
	}
	rep, err := f.WaitSkewReported(ctx, skewed, offset)
	f.logf("fleet: %s: %s reports its clock %v off the cluster's (in bound: %v, ready: %v); peers measure it %v", f.Name, skewed.Name, rep.Self, rep.InBound, rep.Ready, rep.Peers)
	if err != nil {
		return err
	}
	if !joins {
		if rep.InBound || rep.Ready == nil {
			return fmt.Errorf("%s: %s is %v off, yet in bound (%v) or ready", f.Name, skewed.Name, rep.Self, rep.InBound)
		}
		for name, off := range rep.Peers {
			if (off - offset).Abs() > skewTolerance {
				return fmt.Errorf("%s: %s measures %s %v off, want %v", f.Name, name, skewed.Name, off, offset)
			}
		}
	}
	f.Settle(p.Settle)
	leaving := f.Agents[1]
	if _, err := f.Step(ctx, "remove "+leaving.Name, func() error { return f.Remove(leaving) }); err != nil {
		return err
	}
	f.Settle(p.Settle)
	if !joins {
		// Held out through the join and the leave: it took nothing over.
		return f.WroteNothing(ctx, skewed)
	}
	return nil
}

// skewBars are issue 10's: at most one slot lost per moved target, and no
// target whose samples two agents wrote for more than one interval (at most
// one duplicate slot per moved target; the planned figures want none). The
// observer's double_s is not the bar: it counts the loops of every fenced
// handoff, which the new owner starts an interval plus 3 s ahead and whose
// overlap the fence discards, 5.5 s at a 2 s interval with or without skew;
// that the skewed agent scraped nothing is checked apart (WroteNothing).
func skewBars(t *testing.T, r Row, _ plan) {
	t.Helper()
	if r.Missing > r.Moved {
		t.Errorf("%s: %d slots lost over %d moved targets, want at most one each (%s)", r.Scenario, r.Missing, r.Moved, r.KeyValues())
	}
	if r.Duplicates > r.Moved {
		t.Errorf("%s: %d slots written twice over %d moved targets, want at most one each (%s)", r.Scenario, r.Duplicates, r.Moved, r.KeyValues())
	}
}

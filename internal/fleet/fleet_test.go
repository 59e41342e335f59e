package fleet

import (
	"flag"
	"os"
	"slices"
	"testing"
	"time"
)

var long = flag.Bool("fleet.long", false, "run the long fleet scenarios (5 s interval, 2 min outages; about 20 minutes)")

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

// TestFleet runs every scenario on a fresh environment, one after another
// (timings are the point, so they do not share the two cores), and prints
// one table row each. It asserts only what holds today and invariants: the
// agents converge after each change, no agent panics, every target is
// scraped again at the end. The issue-5 bars (at most one missed interval
// per moved target, no out-of-order rejections on planned changes, ...) are
// printed, not asserted, until shoal meets them.
func TestFleet(t *testing.T) {
	p := currentPlan()
	var rows []Row
	run := func(name string, scenario func(t *testing.T, f *Fleet, p plan), args ...string) {
		t.Run(name, func(t *testing.T) {
			o := p.Options
			o.Args = args
			f := Start(t, name, o)
			scenario(t, f, p)
			rows = append(rows, f.Finish())
		})
	}
	run("scale-out-in", scaleOutIn)
	// Agents come back under the same name within the grace: nothing moves.
	run("rolling-restart", rollingRestart, "--cluster.restart-grace=30s")
	// The same without a grace: every target moves away and back, fenced.
	run("rolling-handoff", rollingRestart)
	run("kill", kill)
	run("partition", partition)
	run("receiver-down", receiverDown)
	run("consul-down", consulDown)
	if len(rows) > 0 {
		t.Logf("fleet: %d targets, %d agents, interval %v, outages %v\n%s", p.Targets, p.Agents, p.Interval, p.Outage, Table(rows))
	}
}

// scaleOutIn grows the fleet from 3 to 5 agents one at a time, then shrinks
// it back to 3 (SIGTERM, newest first).
func scaleOutIn(_ *testing.T, f *Fleet, p plan) {
	for range 2 {
		f.Step("add an agent", func() { f.Add() })
		f.Settle(p.Settle)
	}
	for range 2 {
		a := f.Agents[len(f.Agents)-1]
		f.Step("remove "+a.Name, func() { f.Remove(a) })
		f.Settle(p.Settle)
	}
}

// rollingRestart restarts every agent in turn (SIGTERM, then start again
// with the same name, ports and data directory).
func rollingRestart(_ *testing.T, f *Fleet, p plan) {
	for _, a := range slices.Clone(f.Agents) {
		f.Step("restart "+a.Name, a.Restart)
		f.Settle(p.Settle)
	}
}

// kill kills one agent (SIGKILL), lets the others take over, and starts it
// again.
func kill(_ *testing.T, f *Fleet, p plan) {
	victim := f.Agents[1]
	f.Step("kill "+victim.Name, func() { f.Kill(victim) })
	f.Settle(2 * p.Settle)
	f.Step("start "+victim.Name+" again", func() { f.Rejoin(victim) })
	f.Settle(p.Settle)
}

// partition cuts gossip between two agents and the third, lets each side
// declare the other dead and re-shard (every target is then scraped on both
// sides), and heals it.
func partition(t *testing.T, f *Fleet, p plan) {
	if err := partitionSupported(); err != nil {
		if os.Getenv("SHOAL_REQUIRE_INTEGRATION") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	a, b := slices.Clone(f.Agents[:2]), slices.Clone(f.Agents[2:])
	began := time.Now()
	f.Mark("partition")
	heal, err := f.Partition(a, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet: %s: sides split after %.1fs", f.Name, f.WaitSides(began, a, b).Seconds())
	f.Settle(2 * p.Settle)
	f.Step("heal the partition", heal)
	f.Settle(p.Settle)
}

// receiverDown stops the receiver for the outage and restarts an agent
// (SIGTERM and start) a sixth of the way into it.
func receiverDown(t *testing.T, f *Fleet, p plan) {
	victim := f.Agents[1]
	down := time.Now()
	f.Mark("receiver down")
	f.Env.StopReceiver(t)
	f.Sleep(p.Outage / 6)
	f.Step("restart "+victim.Name+" while the receiver is down", victim.Restart)
	f.Sleep(time.Until(down.Add(p.Outage)))
	f.Mark("receiver up")
	f.Env.StartReceiver(t)
	f.Settle(p.Settle)
}

// consulDown stops Consul for the outage.
func consulDown(t *testing.T, f *Fleet, p plan) {
	f.Mark("consul down")
	f.Env.StopConsul(t)
	f.Sleep(p.Outage)
	f.Step("start consul again", func() { f.Env.StartConsul(t) })
	f.Settle(2 * p.Settle)
}

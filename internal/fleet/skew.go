package fleet

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// skewReportTimeout bounds the wait for a skewed agent's offset to be
// measured and reported: a few probe rounds.
const skewReportTimeout = 20 * time.Second

// skewTolerance is how close a reported offset must be to the injected one:
// loopback round trips are well under a millisecond, but a busy machine
// delays acks.
const skewTolerance = 500 * time.Millisecond

// AddSkewed starts a new agent joining the current ones with its clock
// shifted by offset (--debug.clock-offset): it announces instants, judges
// ownership and stamps its samples as an agent on a host whose clock is that
// far off. When joins is true the agent is expected to become ready and
// active (the bound allows its offset) and joins Agents; otherwise it is
// started without waiting and stays out of Agents, observed like the others
// (a target it scraped would count as doubled). Call it inside Step.
func (f *Fleet) AddSkewed(ctx context.Context, offset time.Duration, joins bool) (*e2e.Agent, error) {
	o := e2e.AgentOptions{Name: fmt.Sprintf("fleet-%d", f.seq), Config: f.Env.PromConfig()}
	f.seq++
	for _, a := range f.Agents {
		o.Join = append(o.Join, a.GossipAddr)
	}
	f.configure(&o)
	o.ExtraArgs = append(o.ExtraArgs, "--debug.clock-offset="+offset.String())
	a, err := e2e.NewAgent(f.Env.Group, o)
	if err != nil {
		return nil, err
	}
	f.all = append(f.all, a)
	f.obs.add(a)
	if !joins {
		return a, a.Launch()
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	f.Agents = append(f.Agents, a)
	return a, nil
}

// SkewReport is how a skewed agent's offset was reported.
type SkewReport struct {
	// Self is the agent's own offset to the cluster, from its
	// /api/v1/cluster/members, and whether it is within its bound.
	Self    time.Duration
	InBound bool
	// Ready is its /-/ready error: nil when ready.
	Ready error
	// Peers are the skewed agent's offset as the other agents measured it
	// (its clock minus theirs), by agent name; an agent that refused its
	// metadata does not list it.
	Peers map[string]time.Duration
}

// WaitSkewReported waits until skewed reports its own offset within
// skewTolerance of want and, unless it is in bound, says so in /-/ready.
// It returns what the agents reported.
func (f *Fleet) WaitSkewReported(ctx context.Context, skewed *e2e.Agent, want time.Duration) (SkewReport, error) {
	var rep SkewReport
	err := e2e.Poll(ctx, skewReportTimeout, 200*time.Millisecond, func(ctx context.Context) error {
		m, err := skewed.Members(ctx)
		if err != nil {
			return err
		}
		rep.Self = seconds(m.Clock.OffsetSeconds)
		rep.InBound = m.Clock.InBound
		rep.Ready = skewed.Ready(ctx)
		if m.Clock.MeasuredPeers == 0 || (rep.Self-want).Abs() > skewTolerance {
			return fmt.Errorf("%s reports its clock %v off the cluster's (%d peers measured), want %v", skewed.Name, rep.Self, m.Clock.MeasuredPeers, want)
		}
		if !rep.InBound && rep.Ready == nil {
			return fmt.Errorf("%s is out of clock bound but ready", skewed.Name)
		}
		return nil
	})
	rep.Peers = map[string]time.Duration{}
	for _, a := range f.Agents {
		if a == skewed {
			continue
		}
		m, err := a.Members(ctx)
		if err != nil {
			continue
		}
		i := slices.IndexFunc(m.Members, func(mem e2e.Member) bool { return mem.Name == skewed.Name })
		if i >= 0 && m.Members[i].ClockSamples > 0 {
			rep.Peers[a.Name] = seconds(m.Members[i].ClockOffsetSeconds)
		}
	}
	return rep, err
}

// fenceKept counts the scrapes an agent's fence wrote.
var fenceKept = Counter{Name: "shoal_fence_scrapes_kept_total"}

// WroteNothing returns an error unless a scrapes no target and its fence
// never wrote a scrape: an agent held out of the ring.
func (f *Fleet) WroteNothing(ctx context.Context, a *e2e.Agent) error {
	ts, err := a.ActiveTargets(ctx)
	if err != nil {
		return err
	}
	if len(ts) > 0 {
		return fmt.Errorf("%s scrapes %d targets, want none", a.Name, len(ts))
	}
	vals, err := testenv.FetchCounters(ctx, f.obs.hc, a.URL+"/metrics", []Counter{fenceKept})
	if err != nil {
		return err
	}
	if n := vals[fenceKept]; n != 0 {
		return fmt.Errorf("%s wrote %g scrapes, want none", a.Name, n)
	}
	return nil
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

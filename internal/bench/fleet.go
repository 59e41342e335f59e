package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// convergeTimeout bounds how long a new cluster may take until every agent
// sees every other active and agrees on the ring: gossip needs a second or
// two; the rest is headroom for a loaded machine.
const convergeTimeout = 2 * time.Minute

// placeholder is a dead instance registered before a cluster starts: shoal
// is ready only after a first discovery sync, and Consul SD sends none for a
// service without instances. Targets are registered once the cluster has
// converged, so no agent ever owns more than its share, and the placeholder
// is removed then, before anything is measured.
var placeholder = Instance{ID: placeholderID, Addr: "127.0.0.2:9"}

// cluster is a running set of shoal agents.
type cluster struct {
	agents []*subject
	// pprof are the agents' pprof addresses, when built with the overlay.
	pprof []string
}

// stop stops every agent at once.
func (c *cluster) stop() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.agents))
	for i, a := range c.agents {
		wg.Go(func() { errs[i] = a.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startCluster starts n shoal agents named <name>-<i> in their own
// cluster with e2e's cluster helper, and waits until they agree. With
// withPprof, bin must be built with the pprof overlay.
func (b *Bench) startCluster(ctx context.Context, bin, name string, n int, cfg testenv.PromConfig, withPprof bool) (*cluster, error) {
	c := &cluster{}
	if withPprof {
		for range n {
			port, err := testenv.Port()
			if err != nil {
				return c, err
			}
			c.pprof = append(c.pprof, testenv.Loopback(port))
		}
	}
	base := shoalOptions(bin, name, cfg, "")
	agents, err := e2e.StartCluster(ctx, b.g, n, base, func(i int, o *e2e.AgentOptions) {
		if withPprof {
			o.ExtraArgs = append(o.ExtraArgs, pprofFlag+"="+c.pprof[i])
		}
	})
	for _, a := range agents {
		c.agents = append(c.agents, agentSubject(a))
	}
	if err != nil {
		return c, err
	}
	err = waitFor(ctx, convergeTimeout, fmt.Sprintf("%d agents of %s to agree", n, name), c.agents,
		func(ctx context.Context) (bool, error) {
			for _, a := range c.agents {
				m, err := a.api.Members(ctx)
				if err != nil {
					return false, err
				}
				if active := len(m.Active()); !m.Agree || active != n {
					return false, fmt.Errorf("%s sees %d active members (agree=%v), want %d", a.name, active, m.Agree, n)
				}
			}
			return true, nil
		})
	return c, err
}

// runFleet measures FleetSize agents scraping FleetSize times the targets.
func (b *Bench) runFleet(ctx context.Context, r Result) (Result, error) {
	r.Agents, r.Targets = FleetSize, FleetSize*b.cfg.Targets
	if err := RegisterInstances(ctx, b.consul.Client(), nodeFleet, serviceFleet, []Instance{placeholder}); err != nil {
		return r, err
	}
	defer func() { _ = DeregisterNode(context.WithoutCancel(ctx), b.consul.Client(), nodeFleet) }()
	c, err := b.startCluster(ctx, b.cfg.ShoalBin, r.Label, FleetSize, b.scrapeConfig(r.Label, b.cfg.Interval, serviceFleet), false)
	defer func() { _ = c.stop() }()
	if err != nil {
		return r, err
	}
	if err := RegisterInstances(ctx, b.consul.Client(), nodeFleet, serviceFleet, b.targets[:r.Targets]); err != nil {
		return r, err
	}
	if err := DeregisterInstance(ctx, b.consul.Client(), nodeFleet, serviceFleet, placeholderID); err != nil {
		return r, err
	}
	err = b.measure(ctx, &r, c.agents)
	return r, err
}

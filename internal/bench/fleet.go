package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
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
	agents []*process
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
// cluster, each joining the first, and waits until they agree. With
// withPprof, bin must be built with the pprof overlay.
func (b *Bench) startCluster(ctx context.Context, bin, name string, n int, cfg ScrapeConfig, withPprof bool) (*cluster, error) {
	c := &cluster{}
	var join []string
	for i := range n {
		o := shoalOptions{cluster: "bench-" + name, join: join}
		if withPprof {
			port, err := b.freePort()
			if err != nil {
				return c, err
			}
			o.pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
			c.pprof = append(c.pprof, o.pprofAddr)
		}
		a, err := b.newShoal(bin, fmt.Sprintf("%s-%d", name, i), cfg, o)
		if err != nil {
			return c, err
		}
		c.agents = append(c.agents, a)
		if err := a.start(ctx); err != nil {
			return c, err
		}
		if i == 0 {
			join = []string{a.gossip}
		}
	}
	err := waitFor(ctx, convergeTimeout, fmt.Sprintf("%d agents of %s to agree", n, name), c.agents,
		func(ctx context.Context) (bool, error) {
			for _, a := range c.agents {
				var m struct {
					Agree   bool `json:"agree"`
					Members []struct {
						State string `json:"state"`
					} `json:"members"`
				}
				if err := a.getAPI(ctx, "/api/v1/cluster/members", &m); err != nil {
					return false, err
				}
				active := 0
				for _, mem := range m.Members {
					if mem.State == "active" {
						active++
					}
				}
				if !m.Agree || active != n {
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
	if err := RegisterInstances(ctx, b.cc, nodeFleet, serviceFleet, []Instance{placeholder}); err != nil {
		return r, err
	}
	defer func() { _ = DeregisterNode(context.WithoutCancel(ctx), b.cc, nodeFleet) }()
	c, err := b.startCluster(ctx, b.cfg.ShoalBin, r.Label, FleetSize, b.scrapeConfig(r.Label, b.cfg.Interval, serviceFleet), false)
	defer func() { _ = c.stop() }()
	if err != nil {
		return r, err
	}
	if err := RegisterInstances(ctx, b.cc, nodeFleet, serviceFleet, b.targets[:r.Targets]); err != nil {
		return r, err
	}
	if err := DeregisterInstance(ctx, b.cc, nodeFleet, serviceFleet, placeholderID); err != nil {
		return r, err
	}
	err = b.measure(ctx, &r, c.agents)
	return r, err
}

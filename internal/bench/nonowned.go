package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	// memInterval is the scrape interval of the memory measurement. Memory
	// does not depend on it; CPU does, and thousands of failing scrapes
	// every 5 s would make the machine noisier for nothing.
	memInterval = 30 * time.Second
	// memSettle passes between the target counts settling and the reading:
	// the scrape manager applies target sets every second or so, and the
	// first scrape of every loop happens within one interval.
	memSettle = memInterval + 5*time.Second
	// heapReadings are taken one second apart; their median is the figure.
	heapReadings = 5
	// targetsTimeout bounds how long the agents may take to discover and
	// place the targets.
	targetsTimeout = 5 * time.Minute

	serviceDead = "bench-dead"
	nodeDead    = "bench-dead"
	nodeOwned   = "bench-owned"
)

// memReading is one agent's memory, in bytes.
type memReading struct {
	// heap is the live heap: go_memstats_heap_alloc_bytes right after a
	// GC that /debug/pprof/heap?gc=1 forced, when the agent serves pprof;
	// otherwise go_memstats_heap_inuse_bytes, which includes garbage.
	heap  float64
	inuse float64
	rss   float64
}

// readMemory takes heapReadings readings of an agent and returns their
// medians. pprofAddr may be empty.
func readMemory(ctx context.Context, p *subject, pprofAddr string) (memReading, error) {
	var heap, inuse, rss []float64
	for i := range heapReadings {
		if i > 0 {
			if err := sleep(ctx, time.Second); err != nil {
				return memReading{}, err
			}
		}
		if pprofAddr != "" {
			if err := forceGC(ctx, p.hc, pprofAddr); err != nil {
				return memReading{}, err
			}
		}
		m, err := p.metrics(ctx, "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes")
		if err != nil {
			return memReading{}, err
		}
		if pprofAddr != "" {
			heap = append(heap, m["go_memstats_heap_alloc_bytes"])
		} else {
			heap = append(heap, m["go_memstats_heap_inuse_bytes"])
		}
		inuse = append(inuse, m["go_memstats_heap_inuse_bytes"])
		pm, err := ReadMemory(p.Pid())
		if err != nil {
			return memReading{}, err
		}
		rss = append(rss, float64(pm.RSS))
	}
	return memReading{heap: Median(heap), inuse: Median(inuse), rss: Median(rss)}, nil
}

// forceGC asks for a heap profile with gc=1, which runs a GC first.
func forceGC(ctx context.Context, hc *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/heap?gc=1: %s", resp.Status)
	}
	return nil
}

// waitTargets waits until every agent has discovered discovered targets
// and the agents own owned in all.
func waitTargets(ctx context.Context, c *cluster, discovered, owned int) error {
	return waitFor(ctx, targetsTimeout, fmt.Sprintf("%d discovered and %d owned targets", discovered, owned), c.agents,
		func(ctx context.Context) (bool, error) {
			sum := 0
			for _, a := range c.agents {
				m, err := a.metrics(ctx, "shoal_targets_discovered", "shoal_targets_owned")
				if err != nil {
					return false, err
				}
				if int(m["shoal_targets_discovered"]) != discovered {
					return false, fmt.Errorf("%s discovered %v targets", a.name, m["shoal_targets_discovered"])
				}
				sum += int(m["shoal_targets_owned"])
			}
			if sum != owned {
				return false, fmt.Errorf("the agents own %d targets", sum)
			}
			return true, nil
		})
}

// ownedInstances lists the targets an agent scrapes.
func ownedInstances(ctx context.Context, a *subject) ([]Instance, error) {
	ts, err := a.api.ActiveTargets(ctx)
	if err != nil {
		return nil, err
	}
	ins := make([]Instance, 0, len(ts))
	for _, t := range ts {
		ins = append(ins, Instance{ID: t.Labels.Get("target"), Addr: t.Instance()})
	}
	return ins, nil
}

// runNonOwned measures what a target that an agent discovers but does not
// own costs it, at the process level: FleetSize agents discover
// NonOwnedTargets dead targets and own about a third each; then each
// agent's owned share alone is discovered by a fresh single agent. The
// difference of their live heaps, over the targets the first did not own,
// is the cost of a non-owned target (its discovery included, which
// Prometheus' discovery manager holds whoever owns the target).
func (b *Bench) runNonOwned(ctx context.Context) (err error) {
	n := b.cfg.NonOwnedTargets
	bin, pprof := b.cfg.ShoalBin, true
	if pb, perr := b.pprofShoal(ctx); perr != nil {
		b.logf("no pprof binary (%v): heap is go_memstats_heap_inuse_bytes, garbage included", perr)
		pprof = false
	} else {
		bin = pb
	}
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		err = errors.Join(err, DeregisterNode(cleanup, b.consul.Client(), nodeDead), DeregisterNode(cleanup, b.consul.Client(), nodeOwned))
	}()
	if err := RegisterInstances(ctx, b.consul.Client(), nodeDead, serviceDead, []Instance{placeholder}); err != nil {
		return err
	}

	b.logf("non-owned memory: %d agents, baseline without targets", FleetSize)
	const label = "nonowned"
	c, err := b.startCluster(ctx, bin, label, FleetSize, b.scrapeConfig(label, memInterval, serviceDead), pprof)
	defer func() { _ = c.stop() }()
	if err != nil {
		return err
	}
	if err := waitTargets(ctx, c, 1, 1); err != nil {
		return err
	}
	if err := sleep(ctx, memSettle); err != nil {
		return err
	}
	base := make([]memReading, FleetSize)
	for i, a := range c.agents {
		if base[i], err = readMemory(ctx, a, at(c.pprof, i)); err != nil {
			return err
		}
	}

	b.logf("non-owned memory: registering %d dead targets", n)
	if err := RegisterInstances(ctx, b.consul.Client(), nodeDead, serviceDead, deadInstances("dead", n)); err != nil {
		return err
	}
	if err := DeregisterInstance(ctx, b.consul.Client(), nodeDead, serviceDead, placeholderID); err != nil {
		return err
	}
	if err := waitTargets(ctx, c, n, n); err != nil {
		return err
	}
	if err := sleep(ctx, memSettle); err != nil {
		return err
	}
	all := make([]memReading, FleetSize)
	owned := make([][]Instance, FleetSize)
	for i, a := range c.agents {
		if all[i], err = readMemory(ctx, a, at(c.pprof, i)); err != nil {
			return err
		}
		if owned[i], err = ownedInstances(ctx, a); err != nil {
			return err
		}
	}
	if err := c.stop(); err != nil {
		return err
	}

	b.logf("non-owned memory: each agent's owned targets alone, each in a fresh agent")
	only := make([]memReading, FleetSize)
	var singles []*cluster
	defer func() {
		for _, c := range singles {
			_ = c.stop()
		}
	}()
	for i := range FleetSize {
		svc := fmt.Sprintf("bench-owned-%d", i)
		if err := RegisterInstances(ctx, b.consul.Client(), nodeOwned, svc, owned[i]); err != nil {
			return err
		}
		name := fmt.Sprintf("owned-%d", i)
		oc, err := b.startCluster(ctx, bin, name, 1, b.scrapeConfig(name, memInterval, svc), pprof)
		singles = append(singles, oc)
		if err != nil {
			return err
		}
	}
	for i, oc := range singles {
		if err := waitTargets(ctx, oc, len(owned[i]), len(owned[i])); err != nil {
			return err
		}
	}
	if err := sleep(ctx, memSettle); err != nil {
		return err
	}
	for i, oc := range singles {
		if only[i], err = readMemory(ctx, oc.agents[0], at(oc.pprof, 0)); err != nil {
			return err
		}
	}

	heapName := "live heap (go_memstats_heap_alloc_bytes after a forced GC)"
	if !pprof {
		heapName = "go_memstats_heap_inuse_bytes"
	}
	var perNonOwned, perOwned, perNonOwnedRSS []float64
	for i := range FleetSize {
		o := float64(len(owned[i]))
		non := float64(n) - o
		r := NonOwnedResult{
			Agent: c.agents[i].name, Discovered: n, Owned: len(owned[i]),
			Base: base[i], All: all[i], OwnedOnly: only[i],
		}
		fmt.Fprintln(b.raw, r.Line())
		perNonOwned = append(perNonOwned, div(all[i].heap-only[i].heap, non))
		perOwned = append(perOwned, div(only[i].heap-base[i].heap, o))
		perNonOwnedRSS = append(perNonOwnedRSS, div(all[i].rss-only[i].rss, non))
	}
	fmt.Fprintf(b.raw, "NONOWNED heap: %s\n", heapName)
	fmt.Fprintf(b.raw, "NONOWNED bytes per non-owned target (heap): %s over %d agents\n", formatSpread(Summarize(perNonOwned), 0), FleetSize)
	fmt.Fprintf(b.raw, "NONOWNED bytes per non-owned target (RSS):  %s\n", formatSpread(Summarize(perNonOwnedRSS), 0))
	fmt.Fprintf(b.raw, "NONOWNED bytes per owned target (heap), for comparison: %s\n", formatSpread(Summarize(perOwned), 0))
	return nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// NonOwnedResult is one agent's memory in the three phases.
type NonOwnedResult struct {
	Agent                string
	Discovered, Owned    int
	Base, All, OwnedOnly memReading
}

// Line is the raw line of the result.
func (r NonOwnedResult) Line() string {
	non := float64(r.Discovered - r.Owned)
	return fmt.Sprintf("NONOWNED agent=%s discovered=%d owned=%d "+
		"heap_base=%.0f heap_all=%.0f heap_owned_only=%.0f inuse_base=%.0f inuse_all=%.0f inuse_owned_only=%.0f "+
		"rss_base=%.0f rss_all=%.0f rss_owned_only=%.0f "+
		"heap_b_per_nonowned=%.1f heap_b_per_owned=%.1f rss_b_per_nonowned=%.1f",
		r.Agent, r.Discovered, r.Owned,
		r.Base.heap, r.All.heap, r.OwnedOnly.heap, r.Base.inuse, r.All.inuse, r.OwnedOnly.inuse,
		r.Base.rss, r.All.rss, r.OwnedOnly.rss,
		div(r.All.heap-r.OwnedOnly.heap, non), div(r.OwnedOnly.heap-r.Base.heap, float64(r.Owned)), div(r.All.rss-r.OwnedOnly.rss, non))
}

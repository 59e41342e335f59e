package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ConvergeTimeout bounds how long a cluster may take to agree on its ring
// and move its scrape loops accordingly: gossip needs well under a second,
// the scrape manager applies target changes every 5 s; the rest is headroom
// for a loaded 2-core machine.
const ConvergeTimeout = 90 * time.Second

// Ownership maps a target's instance label to the agents scraping it.
type Ownership map[string][]string

// Scraping asks every agent which targets it scrapes. It fails on the first
// agent that does not answer.
func Scraping(ctx context.Context, agents []*Agent) (Ownership, error) {
	own := Ownership{}
	for _, a := range agents {
		ts, err := a.ActiveTargets(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			own[t.Instance()] = append(own[t.Instance()], a.Name)
		}
	}
	for _, names := range own {
		slices.Sort(names)
	}
	return own, nil
}

// Converged returns nil when every agent lists exactly the others as active
// members and agrees on the ring, every agent places the same targets (the
// instances in want) on the same owners, and the agents scrape disjoint sets
// whose union is want. It returns the ownership, or an error saying what is
// not there yet.
func Converged(ctx context.Context, agents []*Agent, want []string) (Ownership, error) {
	return ConvergedHolding(ctx, agents, want, nil)
}

// ConvergedHolding is Converged for a cluster that holds some of the
// targets in want in quarantine: every agent places them on nobody, and
// nobody scrapes them.
func ConvergedHolding(ctx context.Context, agents []*Agent, want, held []string) (Ownership, error) {
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
		active := m.Active()
		if !slices.Equal(active, names) || !m.Agree {
			return nil, fmt.Errorf("%s sees active members %v (agree=%v), want %v", a.Name, active, m.Agree, names)
		}
		// No change announced ahead: every member's advertised ring (the
		// final one) is the placement now. A joiner is active, ready and
		// agreeing during its handoff lead, while the old owners still own.
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
		if got := slices.Sorted(maps.Keys(owners)); !slices.Equal(got, want) {
			return nil, fmt.Errorf("%s discovered %d targets, want %d (missing %v, extra %v)", a.Name, len(got), len(want), minus(want, got), minus(got, want))
		}
		for _, h := range held {
			if len(owners[h]) != 0 {
				return nil, fmt.Errorf("%s places the held %s on %v", a.Name, h, owners[h])
			}
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
	if err := own.Check(slices.DeleteFunc(slices.Clone(want), func(s string) bool { return slices.Contains(held, s) })); err != nil {
		return nil, err
	}
	for inst, by := range own {
		if !slices.Equal(by, placed[inst]) {
			return nil, fmt.Errorf("%s is scraped by %v but placed on %v", inst, by, placed[inst])
		}
	}
	return own, nil
}

// Check returns nil when the instances in want are scraped by exactly one
// agent each and nothing else is scraped.
func (o Ownership) Check(want []string) error {
	var errs []error
	for inst, by := range o {
		switch {
		case !slices.Contains(want, inst):
			errs = append(errs, fmt.Errorf("%s is scraped by %v but should not be", inst, by))
		case len(by) != 1:
			errs = append(errs, fmt.Errorf("%s is scraped by %d agents %v", inst, len(by), by))
		}
	}
	for _, inst := range want {
		if len(o[inst]) == 0 {
			errs = append(errs, fmt.Errorf("%s is scraped by no agent", inst))
		}
	}
	return errors.Join(errs...)
}

// Of returns the instances each agent scrapes, sorted.
func (o Ownership) Of() map[string][]string {
	out := map[string][]string{}
	for inst, by := range o {
		for _, a := range by {
			out[a] = append(out[a], inst)
		}
	}
	for _, insts := range out {
		slices.Sort(insts)
	}
	return out
}

// String gives each agent's share, e.g. "a-0=9 a-1=8 a-2=8".
func (o Ownership) String() string {
	by := o.Of()
	parts := make([]string, 0, len(by))
	for _, a := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s=%d", a, len(by[a])))
	}
	return strings.Join(parts, " ")
}

// WaitConverged waits until Converged holds and returns the ownership. It
// returns the last reason after ConvergeTimeout.
func WaitConverged(ctx context.Context, agents []*Agent, want []string) (Ownership, error) {
	var own Ownership
	err := Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		var err error
		own, err = Converged(ctx, agents, want)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster did not converge: %w", err)
	}
	return own, nil
}

// Poll calls check every interval until it returns nil, and returns nil;
// once timeout has passed or ctx ends, it returns check's last error.
func Poll(ctx context.Context, timeout, interval time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %w)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// minus returns the elements of a that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
)

// watch prints the summary every refresh until ctx ends (nil: Ctrl-C) or
// the duration passes; then it runs the self-check.
func (d *demo) watch(ctx context.Context) error {
	var deadline <-chan time.Time
	if d.cfg.duration > 0 {
		t := time.NewTimer(d.cfg.duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(d.cfg.refresh)
	defer tick.Stop()
	for {
		d.summary(ctx)
		select {
		case <-ctx.Done():
			if d.cfg.duration > 0 {
				return errors.New("interrupted before DEMO_DURATION passed")
			}
			return nil
		case <-deadline:
			return d.selfCheck(ctx)
		case <-tick.C:
		}
	}
}

// summary prints one line: how many targets each agent scrapes (its
// /api/v1/targets lists only the targets it owns, "down" when it does not
// answer) and for how many the receiver has an up series. A process that
// exited is logged.
func (d *demo) summary(ctx context.Context) {
	parts := make([]string, 0, len(d.agents))
	for i, a := range d.agents {
		n := "down"
		if ts, err := a.ActiveTargets(ctx); err == nil {
			n = fmt.Sprint(len(ts))
		}
		if i == 0 {
			parts = append(parts, fmt.Sprintf("%s: %s targets", a.Name, n))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s", a.Name, n))
		}
		if !a.Running() || exited(a) {
			d.logf("%s is not running; see %s", a.Name, a.LogPath)
		}
	}
	r, err := d.received(ctx)
	got := fmt.Sprint(r)
	if err != nil {
		got = "?"
	}
	fmt.Fprintf(d.cfg.out, "[%s] %s; receiver has up{} for %s targets (%d healthy of %d)\n",
		time.Now().Format(time.TimeOnly), strings.Join(parts, ", "), got, d.cfg.targets-d.cfg.unhealthy, d.cfg.targets)
}

func exited(a *e2e.Agent) bool {
	select {
	case <-a.Exited():
		return true
	default:
		return false
	}
}

// received returns how many farm targets have an up series at the receiver.
func (d *demo) received(ctx context.Context) (int, error) {
	s, err := d.receiver.Query(ctx, `count(up{job="farm"})`, time.Now())
	if err != nil || len(s) == 0 {
		return 0, err
	}
	return int(s[0].V), nil
}

// selfCheck returns nil when the demo worked: every agent ready, all
// agreeing on one cluster and placing every healthy target on the same
// owner, each healthy target scraped by exactly one agent and nothing else
// scraped, and every healthy target's up series at the receiver. It allows
// checkGrace for the last scrapes to arrive.
func (d *demo) selfCheck(ctx context.Context) error {
	var healthy []string
	for _, t := range d.farm.Targets() {
		if t.Healthy {
			healthy = append(healthy, t.Addr)
		}
	}
	var own e2e.Ownership
	err := e2e.Poll(ctx, checkGrace, time.Second, func(ctx context.Context) error {
		for _, a := range d.agents {
			if err := a.Ready(ctx); err != nil {
				return err
			}
		}
		var err error
		if own, err = e2e.Converged(ctx, d.agents, healthy); err != nil {
			return err
		}
		r, err := d.received(ctx)
		if err != nil {
			return err
		}
		if r != len(healthy) {
			return fmt.Errorf("the receiver has up{} for %d targets, want %d", r, len(healthy))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	d.summary(ctx)
	d.logf("ok: the %d healthy targets are shared by the agents (%s), each scraped by one, and reach the receiver", len(healthy), own)
	return nil
}

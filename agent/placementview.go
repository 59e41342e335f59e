package agent

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
)

// Placement is /api/v1/cluster/placement: the balance of series over the
// members as the leader measures it, the plan in force and the targets it
// overrides. A member that does not lead asks the leader (LoadBy names who
// measured); without an answer it shows what it knows itself.
type Placement struct {
	// Mode is --cluster.placement: load or hash.
	Mode   string     `json:"mode"`
	Leader LeaderInfo `json:"leader"`
	// Plan is the newest plan this agent holds; nil without one.
	Plan *PlanInfo `json:"plan"`
	// Current is false when a peer advertises a newer plan this agent could
	// not read yet (FetchError says why); it then places by Plan.
	Current    bool   `json:"current"`
	FetchError string `json:"fetchError,omitempty"`

	// LoadBy is the agent whose measurement follows (the leader); empty
	// when none is available.
	LoadBy   string    `json:"loadBy"`
	Measured time.Time `json:"measured"`
	// Bound is --cluster.placement-bound. MaxMean is the most loaded
	// member's series per weight over the mean; Imbalance the largest
	// series over fair share of the members the bound applies to (those
	// holding more than one target). Within is Imbalance ≤ 1+Bound.
	Bound     float64 `json:"bound"`
	MaxMean   float64 `json:"maxMean"`
	Imbalance float64 `json:"imbalance"`
	Within    bool    `json:"within"`
	// NoBetter is true when, above the bound, the leader's last replanning
	// found no placement that does better: the targets' sizes are too
	// coarse for the bound (25 equal targets on 4 agents: 7/6/6/6, 1.12).
	// Nothing is left to do until sizes or members change.
	NoBetter bool `json:"noBetter,omitempty"`
	// OverSince is when the imbalance went above the bound; the leader
	// replans after --cluster.placement-hold.
	OverSince *time.Time    `json:"overSince,omitempty"`
	Members   []MemberLoad  `json:"members"`
	Overrides []OverrideDoc `json:"overrides"`
	// Errors are the members whose load could not be read, with why.
	Errors map[string]string `json:"errors,omitempty"`
}

// PlanInfo describes a plan.
type PlanInfo struct {
	Version   uint64    `json:"version"`
	Digest    string    `json:"digest"`
	At        time.Time `json:"at"`
	Leader    string    `json:"leader"`
	Overrides int       `json:"overrides"`
	// InForce is false while the plan's instant is still ahead.
	InForce bool `json:"inForce"`
}

// MemberLoad is one member's measured load.
type MemberLoad struct {
	Name             string  `json:"name"`
	Weight           float64 `json:"weight"`
	Targets          int     `json:"targets"`
	Series           float64 `json:"series"`
	SamplesPerSecond float64 `json:"samplesPerSecond"`
	// Fair is the member's fair share of series; Oversized marks a member
	// that holds a target larger than a fair share (it holds it alone).
	Fair      float64 `json:"fair"`
	Oversized bool    `json:"oversized"`
}

// OverrideDoc is one target the plan in force places off its rendezvous
// owner, and why.
type OverrideDoc struct {
	Key        string  `json:"key"`
	Job        string  `json:"job,omitempty"`
	URL        string  `json:"url,omitempty"`
	Member     string  `json:"member"`
	Rendezvous string  `json:"rendezvous"`
	Reason     string  `json:"reason"`
	Series     float64 `json:"series"`
}

// placementView is what this agent knows of the placement. Only the
// leader has the members' loads: a member that does not lead asks it.
//
// With local set it does not ask: the leader's own answer, or that of a
// member that thinks another leads.
func (a *Agent) placementView(ctx context.Context, local bool) Placement {
	st := a.node.PlanStatus()
	out := Placement{Mode: st.Mode, Leader: a.leaderInfo(), Current: st.Current(), Bound: a.opts.Placement.Bound,
		Members: []MemberLoad{}, Overrides: []OverrideDoc{}}
	now := a.node.Now()
	if rec, ok := a.node.Plan(); ok {
		out.Plan = &PlanInfo{Version: rec.Version, Digest: digestString(rec.Plan.Digest()), At: rec.At, Leader: rec.Leader,
			Overrides: rec.Plan.Len(), InForce: !rec.At.After(now)}
	}
	a.planner.mu.Lock()
	out.FetchError = a.planner.fetchErr
	a.planner.mu.Unlock()
	if out.Leader.Self {
		a.planner.fill(&out, a.node.View(), a.targetNames())
		return out
	}
	if out.Leader.Leader != "" && !local {
		if lp, ok := a.leaderPlacement(ctx, out.Leader.Leader); ok {
			out.LoadBy, out.Measured, out.MaxMean, out.Imbalance, out.Within, out.OverSince = lp.LoadBy, lp.Measured, lp.MaxMean, lp.Imbalance, lp.Within, lp.OverSince
			out.Members, out.Overrides, out.Errors = lp.Members, lp.Overrides, lp.Errors
		}
	}
	return out
}

// leaderPlacement asks the leader for its placement view.
func (a *Agent) leaderPlacement(ctx context.Context, leader string) (Placement, bool) {
	for _, p := range a.node.Peers() {
		if p.Name != leader || p.HTTPAddr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, planFetchTimeout)
		defer cancel()
		var env struct {
			Data Placement `json:"data"`
		}
		if err := getPeerJSON(ctx, a.planner.client, p.HTTPAddr, "/api/v1/cluster/placement?local=1", maxLoadReport, &env); err != nil {
			return Placement{}, false
		}
		return env.Data, env.Data.LoadBy == leader
	}
	return Placement{}, false
}

// targetName is a target's job and URL as the API shows them.
type targetName struct{ job, url string }

// targetNames maps the discovered targets' keys to their names.
func (a *Agent) targetNames() map[uint64]targetName {
	ts := a.scraper.Filter().Targets()
	out := make(map[uint64]targetName, len(ts))
	for _, t := range ts {
		out[t.Key] = targetName{job: t.Job, url: a.showURL(t.URL)}
	}
	return out
}

// fill writes the leader's measurement into out, as of view v.
func (p *planner) fill(out *Placement, v gossip.View, names map[uint64]targetName) {
	p.mu.Lock()
	last := p.last
	sizes := make(map[uint64]loadSample, len(p.sizes))
	for k, s := range p.sizes {
		sizes[k] = s
	}
	errs := make(map[string]string, len(p.loadErrs))
	for k, e := range p.loadErrs {
		errs[k] = e
	}
	p.mu.Unlock()
	if !last.computed {
		return
	}
	out.LoadBy, out.Measured = v.Self(), last.at
	out.MaxMean, out.Imbalance, out.Within, out.NoBetter = last.stats.MaxMean, last.stats.Imbalance, last.stats.Within, last.noBetter
	if !last.overSince.IsZero() {
		t := last.overSince
		out.OverSince = &t
	}
	if len(errs) > 0 {
		out.Errors = errs
	}
	byName := map[string]*MemberLoad{}
	for _, m := range last.stats.Members {
		out.Members = append(out.Members, MemberLoad{Name: m.Name, Weight: m.Weight, Fair: m.Fair, Oversized: m.Oversized})
	}
	for i := range out.Members {
		byName[out.Members[i].Name] = &out.Members[i]
	}
	// Where each measured target is now, under the plan in force.
	var owners [1]string
	for k, s := range sizes {
		o := v.Owners(owners[:0], k)
		if len(o) == 0 {
			continue
		}
		if m := byName[o[0]]; m != nil {
			m.Targets++
			m.Series += s.series
			m.SamplesPerSecond += s.perSec
		}
	}
	pl := v.Placement()
	for _, o := range pl.Plan().Overrides() {
		if !pl.Planned(o.Key) && o.Reason != placement.ReasonOversized {
			continue
		}
		h, _ := pl.Ring().Owner(o.Key)
		d := OverrideDoc{Key: digestString(o.Key), Member: o.Member, Rendezvous: h, Reason: o.Reason.String()}
		if n, ok := names[o.Key]; ok {
			d.Job, d.URL = n.job, n.url
		}
		if s, ok := sizes[o.Key]; ok {
			d.Series = s.series
		}
		out.Overrides = append(out.Overrides, d)
	}
	slices.SortFunc(out.Overrides, func(a, b OverrideDoc) int {
		switch {
		case a.Series > b.Series:
			return -1
		case a.Series < b.Series:
			return 1
		}
		return cmp.Compare(a.Key, b.Key)
	})
}

func (w *webServer) apiPlacement(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, w.a.placementView(r.Context(), r.URL.Query().Get("local") != ""))
}

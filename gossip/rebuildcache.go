package gossip

import (
	"cmp"
	"slices"
	"time"
)

// A ring change makes every member advertise its new ring digest, so each
// member receives one metadata update per member, and each update used to
// cost a full rebuild: decoding every member's metadata (JSON) and building
// the schedule and its rings again. That is O(N) work per update and O(N²)
// per ring change on every member; while the scale report's 50-node
// cluster formed it was a quarter of the process's CPU (rebuild 26 %: the
// schedule 15 %, JSON decoding most of the rest). rebuildCache keeps what
// an update of one member's digest or discovery does not change.

// rebuildCache is guarded by Node.rebuildMu.
type rebuildCache struct {
	// metas are the members' decoded metadata, valid while their encoded
	// form is the same. Only accepted metadata is kept: decodeMeta's checks
	// bound how far ahead a peer's instants may lie, and a claim that was
	// not too far ahead then is not later, so a cached acceptance stands.
	metas map[string]cachedMeta
	// spans and sched are the last schedule built and what it was built
	// from, and horizon its history horizon (newSchedule's now minus
	// scheduleHistory).
	spans   []span
	plans   []planSpan
	sched   *Schedule
	horizon time.Time
}

type cachedMeta struct {
	raw  string
	meta Meta
}

// meta returns a member's decoded metadata, decoding (and checking) it only
// when it changed.
func (c *rebuildCache) meta(n *Node, name string, raw []byte) (Meta, error) {
	if m, ok := c.metas[name]; ok && m.raw == string(raw) {
		return m.meta, nil
	}
	meta, err := n.peerMeta(name, raw)
	if err != nil {
		delete(c.metas, name)
		return Meta{}, err
	}
	if c.metas == nil {
		c.metas = map[string]cachedMeta{}
	}
	c.metas[name] = cachedMeta{raw: string(raw), meta: meta}
	return meta, nil
}

// forget drops the metadata of members gone from members.
func (c *rebuildCache) forget(members []member) {
	if len(c.metas) <= len(members) {
		return
	}
	keep := make(map[string]bool, len(members))
	for _, m := range members {
		keep[m.name] = true
	}
	for name := range c.metas {
		if !keep[name] {
			delete(c.metas, name)
		}
	}
}

// schedule returns the schedule of spans at now: the last one when the spans
// are the same and no instant of theirs crossed the history horizon since
// (newSchedule would build an identical one), a new one otherwise. It sorts
// spans.
func (c *rebuildCache) schedule(spans []span, plans []planSpan, now time.Time) (*Schedule, error) {
	slices.SortFunc(spans, compareSpans)
	horizon := now.Add(-scheduleHistory)
	if c.sched != nil && slices.EqualFunc(spans, c.spans, func(a, b span) bool { return compareSpans(a, b) == 0 }) && !crossed(spans, c.horizon, horizon) &&
		samePlanSpans(plans, c.plans) && !plansCrossed(plans, c.horizon, horizon) {
		return c.sched, nil
	}
	s, err := newPlannedSchedule(spans, plans, now)
	if err != nil {
		return nil, err
	}
	c.spans, c.plans, c.sched, c.horizon = slices.Clone(spans), slices.Clone(plans), s, horizon
	return s, nil
}

// samePlanSpans tells whether two plan lists hold the same plans from the
// same instants.
func samePlanSpans(a, b []planSpan) bool {
	return slices.EqualFunc(a, b, func(x, y planSpan) bool { return x.from.Equal(y.from) && x.plan == y.plan })
}

// plansCrossed reports whether a plan's instant lies in (from, to].
func plansCrossed(plans []planSpan, from, to time.Time) bool {
	for _, p := range plans {
		if !p.from.IsZero() && p.from.After(from) && !p.from.After(to) {
			return true
		}
	}
	return false
}

// crossed reports whether an instant of spans lies in (from, to]: it was
// after the horizon then and is not now.
func crossed(spans []span, from, to time.Time) bool {
	for _, sp := range spans {
		for _, t := range []time.Time{sp.from, sp.to} {
			if !t.IsZero() && t.After(from) && !t.After(to) {
				return true
			}
		}
	}
	return false
}

// compareSpans orders spans by member, then by instants, so that the same
// spans compare equal whatever order the member map gave them in.
func compareSpans(a, b span) int {
	return cmp.Or(
		cmp.Compare(a.member.Name, b.member.Name),
		cmp.Compare(a.member.Weight, b.member.Weight),
		a.from.Compare(b.from),
		a.to.Compare(b.to),
	)
}

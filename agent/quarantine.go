package agent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/internal/flagext"
)

// Quarantine of targets that kill their owner.
//
// Scrape limits keep a target over them from exhausting an agent's memory,
// but a target under them (or in a job that raised them) can still kill the
// agent that scrapes it; its next owner then takes it over and dies next,
// and the fleet falls one agent at a time. So a target is held, scraped by
// no agent, when its owners keep dying:
//
//   - A failure is a member that disappeared without announcing that it
//     was leaving (gossip.Failure). It strikes the targets it owned, in the
//     ring it agreed on, when it failed.
//   - Caught in the act: every agent advertises the scrapes it has had in
//     progress for over a second (at most 4, the longest first: a body that
//     exhausts an agent's memory takes seconds to read and parse, ordinary
//     scrapes milliseconds). A failure that advertised some strikes only
//     those, and holds them at once: one agent lost to a poison target.
//   - Otherwise one failure holds nothing: a crash of an idle agent that
//     owned 20 targets only makes them suspect.
//   - A target struck by the failures of two different members within
//     --cluster.quarantine-window is held for --cluster.quarantine-backoff:
//     its owner died, and the agent that took it over died too. Different
//     members, because an agent that crash-loops for a reason of its own
//     takes its same targets back after each restart.
//   - A failure that strikes a target within the window after a hold ended
//     (on probation) holds it again at once, for twice as long, up to
//     --cluster.quarantine-max-backoff.
//   - A failure of a member that did not agree on the ring strikes nothing:
//     it may not have been scraping what this agent's ring gave it (a
//     partition cuts several members off at once: each side sees them fail
//     one after another, and without this rule a target would move from one
//     "dead" member to the next on paper and be held).
//
// Every agent present derives the same holds from the same failures, which
// memberlist declares cluster-wide. The instants differ by when each agent
// learned of the failure (under a second), so each agent advertises the holds
// in effect in its gossip metadata and keeps every hold a peer advertises
// (learned): the hold ends at the latest advertised instant, the same one
// everywhere, and an agent that joins later (the restarted victim) holds the
// target too. The end is an announced change like a join's: the filter
// starts the owner's loop ahead and the fence keeps the slots from that
// instant on, so the target resumes with a normal handoff.

// QuarantineConfig is --cluster.quarantine-*.
type QuarantineConfig struct {
	// Window is how close two failures striking a target must be to hold
	// it, and how long after a hold ends one more failure holds it again.
	// Zero disables the quarantine.
	Window time.Duration
	// Backoff is the first hold; each hold on probation doubles it.
	Backoff time.Duration
	// MaxBackoff caps the hold, at most gossip.MaxQuarantineHold.
	MaxBackoff time.Duration
}

// Quarantine defaults: a poison target kills its new owner within a scrape
// interval or two of the handoff, plus the failure detection (seconds), so
// ten minutes catch it at any common interval while two unrelated crashes of
// the owners of one target within ten minutes stay rare. Five minutes of
// hold give an operator an alert and a look before the next attempt, which
// risks one more agent; an hour between attempts at most.
const (
	DefaultQuarantineWindow     = 10 * time.Minute
	DefaultQuarantineBackoff    = 5 * time.Minute
	DefaultQuarantineMaxBackoff = time.Hour
)

// DefaultQuarantineConfig returns the defaults.
func DefaultQuarantineConfig() QuarantineConfig {
	return QuarantineConfig{Window: DefaultQuarantineWindow, Backoff: DefaultQuarantineBackoff, MaxBackoff: DefaultQuarantineMaxBackoff}
}

// RegisterFlags declares --cluster.quarantine-*.
func (c *QuarantineConfig) RegisterFlags(app *kingpin.Application) {
	flagext.Duration(app, "cluster.quarantine-window", "Hold a target (scraped by no agent) when two different agents die without leaving, each while it owned the target, within this window; also how long after a hold ends one more such death holds it again. 0 disables the quarantine.", &c.Window)
	flagext.Duration(app, "cluster.quarantine-backoff", "How long the first hold of a target lasts; each hold that follows within the window lasts twice as long as the one before.", &c.Backoff)
	flagext.Duration(app, "cluster.quarantine-max-backoff", "The longest hold, at most "+gossip.MaxQuarantineHold.String()+".", &c.MaxBackoff)
}

// Validate checks the durations; errors name the flag and the value.
func (c QuarantineConfig) Validate() error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("--cluster.quarantine-window must not be negative, got %s", c.Window)
	case c.Window == 0:
		return nil
	case c.Window > maxQuarantineWindow:
		return fmt.Errorf("--cluster.quarantine-window must be at most %s (owners dying hours apart are not killed by one target), got %s", maxQuarantineWindow, c.Window)
	case c.Backoff <= 0:
		return fmt.Errorf("--cluster.quarantine-backoff must be positive, got %s", c.Backoff)
	case c.MaxBackoff < c.Backoff:
		return fmt.Errorf("--cluster.quarantine-max-backoff must be at least --cluster.quarantine-backoff (%s), got %s", c.Backoff, c.MaxBackoff)
	case c.MaxBackoff > gossip.MaxQuarantineHold:
		return fmt.Errorf("--cluster.quarantine-max-backoff must be at most %s (peers refuse a longer hold), got %s", gossip.MaxQuarantineHold, c.MaxBackoff)
	}
	return nil
}

// maxQuarantineWindow: gossip keeps failures for a day, and a target whose
// owners die a day apart is not what kills them.
const maxQuarantineWindow = 6 * time.Hour

// enabled reports whether targets are quarantined at all.
func (c QuarantineConfig) enabled() bool { return c.Window > 0 }

// hold returns how long a hold at level lasts: Backoff doubled level-1
// times, at most MaxBackoff.
func (c QuarantineConfig) hold(level int) time.Duration {
	d := c.Backoff
	for i := 1; i < level && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// qEvent is what happened to one target: a member that failed while it
// owned it (member set), or a hold a peer advertised, as first learned here.
type qEvent struct {
	at     time.Time
	member string
	// caught: the member advertised a scrape of the target in flight
	// when it died.
	caught bool
	// A learned hold (member == ""): until when, at which level.
	until time.Time
	level int
}

// qHold is one hold of a target, [from, until).
type qHold struct {
	from, until time.Time
	level       int
	// members are the owners whose failures led to it; empty when it was
	// learned from a peer.
	members []string
}

// errUnsorted guards judge's contract.
var errUnsorted = errors.New("quarantine events must be sorted by time")

// judge returns a target's holds, oldest first, from its events sorted by
// time. It is a pure function of its arguments, so that every agent that
// saw the same events decides the same.
func (c QuarantineConfig) judge(evs []qEvent) ([]qHold, error) {
	var holds []qHold
	var suspects []qEvent
	for i, e := range evs {
		if i > 0 && e.at.Before(evs[i-1].at) {
			return nil, errUnsorted
		}
		var last *qHold
		if len(holds) > 0 {
			last = &holds[len(holds)-1]
		}
		if e.member == "" {
			// A peer's hold: the same as ours if they overlap (the peer
			// learned of the failure at another instant), else a new one.
			if !e.until.After(e.at) {
				continue
			}
			if last != nil && e.at.Before(last.until) {
				last.until = later(last.until, e.until)
				last.level = max(last.level, e.level)
				continue
			}
			holds = append(holds, qHold{from: e.at, until: e.until, level: e.level})
			suspects = nil
			continue
		}
		switch {
		case last != nil && e.at.Before(last.until):
			// Held: the member was not scraping it, or did not know yet.
			continue
		case last != nil && e.at.Before(last.until.Add(c.Window)):
			// On probation: one more death is enough.
			holds = append(holds, c.newHold(e.at, last.level+1, []string{e.member}))
			suspects = nil
			continue
		case e.caught:
			// It died while scraping this target, for over a second.
			holds = append(holds, c.newHold(e.at, 1, []string{e.member}))
			suspects = nil
			continue
		}
		suspects = slices.DeleteFunc(suspects, func(s qEvent) bool { return !s.at.After(e.at.Add(-c.Window)) })
		suspects = append(suspects, e)
		var members []string
		for _, s := range suspects {
			if !slices.Contains(members, s.member) {
				members = append(members, s.member)
			}
		}
		if len(members) >= 2 {
			holds = append(holds, c.newHold(e.at, 1, members))
			suspects = nil
		}
	}
	return holds, nil
}

// newHold is a hold from at on; it ends on a whole second, as gossip carries
// it, so that peers that learn it end it at the same instant.
func (c QuarantineConfig) newHold(at time.Time, level int, members []string) qHold {
	until := at.Add(c.hold(level))
	if t := until.Truncate(time.Second); !t.Equal(until) {
		until = t.Add(time.Second)
	}
	return qHold{from: at, until: until, level: min(level, maxLevel), members: members}
}

// maxLevel is gossip's bound on an advertised level.
const maxLevel = 31

// heldAt reports whether holds hold the target at t, and until when.
func heldAt(holds []qHold, t time.Time) (qHold, bool) { return heldBack(holds, t, 0) }

// holdLookback is how far before its start a hold also denies ownership.
// When a member fails, gossip drops it from the ring's whole history (the
// schedule of the last gossip.ScheduleHistory is rebuilt without it), so the
// next agent in the target's ranking appears to have owned the target all
// along; the
// filter keeps a loop running for a scrape timeout after a change the target
// was owned just before (the hold's start), and that loop's one scrape of the
// poison body killed a second agent. Held from a schedule's history back,
// nobody owned it just before.
const holdLookback = gossip.ScheduleHistory

// heldBack is heldAt with every hold starting back earlier.
func heldBack(holds []qHold, t time.Time, back time.Duration) (qHold, bool) {
	for i := len(holds) - 1; i >= 0; i-- {
		h := holds[i]
		if !t.Before(h.from.Add(-back)) && t.Before(h.until) {
			return h, true
		}
		if t.After(h.until) {
			break
		}
	}
	return qHold{}, false
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

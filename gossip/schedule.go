package gossip

import (
	"encoding/binary"
	"slices"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// Schedule is the ring over time. Planned membership changes are announced
// with a wall-clock time at which they take effect (a joining member's
// active-since, a leaving member's until), so every member switches each key
// to its new owner at the same instant rather than whenever the gossip
// reaches it. A Schedule holds the ring of every interval between those
// instants; it is immutable.
type Schedule struct {
	// starts[i] is when rings[i] takes effect; starts[0] is the zero time,
	// standing for "since ever". rings[i] holds until starts[i+1]. places[i]
	// is rings[i] with the load-aware plan in force then (plan.go).
	starts []time.Time
	rings  []*ring.Ring
	places []Placement
	digest uint64
}

// span is one member's presence in the ring: [from, to). A zero from means
// since ever, a zero to means until further notice.
type span struct {
	member   ring.Member
	from, to time.Time
}

// scheduleHistory is how far back a Schedule keeps ring changes. Samples are
// judged by their scrape timestamp, which lags the wall clock by at most a
// scrape timeout; older changes collapse into "since ever".
const scheduleHistory = 5 * time.Minute

// ScheduleHistory is how far back a Schedule keeps ring changes; a member
// that fails is dropped from all of it, so over that span its successors
// appear to have owned its keys all along.
const ScheduleHistory = scheduleHistory

// emptySchedule owns nothing, at any time.
var emptySchedule = mustSchedule(nil, time.Time{})

func mustSchedule(spans []span, now time.Time) *Schedule {
	s, err := newSchedule(spans, now)
	if err != nil {
		panic(err)
	}
	return s
}

// newSchedule builds the schedule of spans as seen at now, placed by plain
// rendezvous: changes older than scheduleHistory are folded into the first
// ring.
func newSchedule(spans []span, now time.Time) (*Schedule, error) {
	return newPlannedSchedule(spans, nil, now)
}

// newPlannedSchedule is newSchedule with the load-aware plans and the
// instants they take effect, oldest first (plan.go).
func newPlannedSchedule(spans []span, plans []planSpan, now time.Time) (*Schedule, error) {
	horizon := now.Add(-scheduleHistory)
	if now.IsZero() {
		horizon = time.Time{}
	}
	plans = foldPlans(plans, horizon)
	live := make([]span, 0, len(spans))
	var points []time.Time
	for _, sp := range spans {
		if !sp.to.IsZero() && !sp.to.After(horizon) {
			continue // gone before the horizon
		}
		if !sp.from.IsZero() && !sp.from.After(horizon) {
			sp.from = time.Time{}
		}
		if !sp.from.IsZero() && !sp.to.IsZero() && !sp.to.After(sp.from) {
			continue // empty
		}
		live = append(live, sp)
		if !sp.from.IsZero() {
			points = append(points, sp.from)
		}
		if !sp.to.IsZero() {
			points = append(points, sp.to)
		}
	}
	for _, p := range plans {
		if !p.from.IsZero() {
			points = append(points, p.from)
		}
	}
	slices.SortFunc(points, func(a, b time.Time) int { return a.Compare(b) })
	points = slices.CompactFunc(points, func(a, b time.Time) bool { return a.Equal(b) })

	s := &Schedule{
		starts: make([]time.Time, 0, len(points)+1),
		rings:  make([]*ring.Ring, 0, len(points)+1),
		places: make([]Placement, 0, len(points)+1),
	}
	d := xxhash.New()
	var buf [8]byte
	for i := -1; i < len(points); i++ {
		var at time.Time
		if i >= 0 {
			at = points[i]
		}
		var ms []ring.Member
		for _, sp := range live {
			// A member can have two spans: a tombstone of the process that
			// left with a restart grace, and the process that came back.
			if covers(sp, at, i < 0) && !slices.ContainsFunc(ms, func(m ring.Member) bool { return m.Name == sp.member.Name }) {
				ms = append(ms, sp.member)
			}
		}
		r, err := ring.New(ms)
		if err != nil {
			return nil, err
		}
		pl := newPlacement(r, planAt(plans, at, i < 0))
		if n := len(s.places); n > 0 && s.places[n-1].Digest() == pl.Digest() {
			continue // no change at this instant
		}
		s.starts = append(s.starts, at)
		s.rings = append(s.rings, r)
		s.places = append(s.places, pl)
		if i >= 0 {
			binary.LittleEndian.PutUint64(buf[:], uint64(at.UnixNano()))
			_, _ = d.Write(buf[:])
		}
		binary.LittleEndian.PutUint64(buf[:], pl.Digest())
		_, _ = d.Write(buf[:])
	}
	s.digest = d.Sum64()
	return s, nil
}

// covers reports whether sp includes the instant at; ever stands for the
// first ring, before any announced instant.
func covers(sp span, at time.Time, ever bool) bool {
	if ever {
		return sp.from.IsZero()
	}
	return (sp.from.IsZero() || !sp.from.After(at)) && (sp.to.IsZero() || sp.to.After(at))
}

// At returns the ring in effect at t. Who owns a key also depends on the
// plan in force: ask PlacementAt.
func (s *Schedule) At(t time.Time) *ring.Ring { return s.rings[s.index(t)] }

// PlacementAt returns the ring and the plan in effect at t.
func (s *Schedule) PlacementAt(t time.Time) Placement { return s.places[s.index(t)] }

func (s *Schedule) index(t time.Time) int {
	i := sort.Search(len(s.starts), func(i int) bool { return s.starts[i].After(t) })
	if i == 0 {
		return 0 // t is the zero time
	}
	return i - 1
}

// Final returns the ring once every announced change has taken effect.
func (s *Schedule) Final() *ring.Ring { return s.rings[len(s.rings)-1] }

// FinalPlacement returns the ring and plan once every announced change has
// taken effect. Its digest is what members advertise to check agreement.
func (s *Schedule) FinalPlacement() Placement { return s.places[len(s.places)-1] }

// Changes returns the instants at which the ring changes, oldest first; the
// past ones are kept for scheduleHistory.
func (s *Schedule) Changes() []time.Time { return slices.Clone(s.starts[1:]) }

// Digest identifies the schedule: equal digests mean equal rings at equal
// instants.
func (s *Schedule) Digest() uint64 { return s.digest }

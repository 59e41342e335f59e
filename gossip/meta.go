package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a member's role as it announces it in its gossip metadata.
type State uint8

// Member states. Only StateActive members own targets.
const (
	// StateJoining: the process is up and gossiping but has not finished
	// joining the cluster; it owns nothing yet.
	StateJoining State = iota + 1
	// StateActive: the member owns its share of targets.
	StateActive
	// StateLeaving: the member is shutting down. It stays in the ring until
	// the Until time it announces, and drops out of every ring at that
	// instant on every member, so that its targets move while it is still
	// alive (handoff) or, after a restart grace, if it has not come back.
	StateLeaving
)

func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateActive:
		return "active"
	case StateLeaving:
		return "leaving"
	}
	return "unknown"
}

func parseState(s string) (State, error) {
	switch s {
	case "joining":
		return StateJoining, nil
	case "active":
		return StateActive, nil
	case "leaving":
		return StateLeaving, nil
	}
	return 0, fmt.Errorf("state must be joining, active or leaving, got %q", s)
}

// metaVersion is the metadata encoding version. Decoders accept unknown
// fields so that a newer agent can add some during a rolling upgrade.
const metaVersion = 1

// maxMetaSize is memberlist's limit for node metadata (memberlist.MetaMaxSize).
const maxMetaSize = 512

// Meta is what every member gossips about itself along with its liveness.
type Meta struct {
	State    State
	HTTPAddr string    // where its API and status page answer, host:port
	Version  string    // shoal version
	Digest   uint64    // ring digest of the member set it currently sees
	Started  time.Time // process start; the younger of two same-named nodes yields
	Weight   float64   // ring weight, in (0, ring.MaxWeight]
	// Since is when an active member starts owning keys; zero means since it
	// became active. Until is when a leaving member stops owning keys; zero
	// means at once. Both are announced ahead so that every member switches
	// owners at the same instant.
	Since, Until time.Time
	// Discovery is what the member scrapes from: its configuration and the
	// targets it discovers, as digests (see Discovery).
	Discovery Discovery
	// Plan is the newest load-aware plan the member holds (plan.go).
	Plan PlanRef
	// Quarantines are the targets the member holds out of every ring (see
	// Quarantine), as many as fit in memberlist's limit (at most
	// MaxQuarantinesAdvertised).
	Quarantines []Quarantine
	// InFlight are the keys of the targets whose scrape has been in
	// progress for a while (at most MaxInFlightAdvertised): if the member
	// dies now, these are what it was busy with (see Failure.InFlight).
	InFlight []uint64
}

// MaxInFlightAdvertised bounds Meta.InFlight: 19 bytes each.
const MaxInFlightAdvertised = 4

// Quarantine is a target held out of every ring until an instant: no member
// scrapes it. The agent decides which targets (those whose owners keep
// dying, agent/quarantine.go); members advertise the holds in effect so
// that all of them, and those that join later, hold the same targets until
// the same instant (the latest advertised).
type Quarantine struct {
	// Key is the target's ownership key.
	Key uint64
	// Until is when the hold ends, in whole seconds.
	Until time.Time
	// Level counts the holds in a row (1 for the first); each one lasts
	// twice as long as the one before, up to a cap.
	Level int
}

// Bounds on the quarantines a peer may advertise.
const (
	// MaxQuarantinesAdvertised keeps the metadata small: each costs about
	// 32 bytes of memberlist's 512. A member that holds more advertises
	// the ones that end last; peers that saw the failures themselves hold
	// the others anyway.
	MaxQuarantinesAdvertised = 8
	// MaxQuarantineHold bounds how far ahead a hold may end (and so
	// --cluster.quarantine-max-backoff): a target held for longer than a
	// day is better removed from discovery by its operator.
	MaxQuarantineHold = 24 * time.Hour
	// maxQuarantineLevel bounds Level: 2^31 times any back-off is far past
	// MaxQuarantineHold.
	maxQuarantineLevel = 31
)

// Discovery summarises what a member discovers, so that members can tell
// whether they agree on what there is to scrape and not only on who is a
// member. Digests are opaque and only compared; zero means unknown (an
// agent that has not finished its first discovery, or an older version).
type Discovery struct {
	// Config digests the effective scrape configuration (after defaults,
	// secrets masked).
	Config uint64
	// Targets digests the discovered targets of every job.
	Targets uint64
	// Changed is when Targets last changed, by the member's clock: a change
	// of who scrapes a target because a member starts or stops seeing it
	// takes effect a handoff lead after it.
	Changed time.Time
}

type wireMeta struct {
	V       int     `json:"v"`
	State   string  `json:"s"`
	HTTP    string  `json:"h,omitempty"`
	Version string  `json:"ver,omitempty"`
	Digest  string  `json:"d,omitempty"`
	Started int64   `json:"t,omitempty"` // unix milliseconds
	Weight  float64 `json:"w,omitempty"`
	Since   int64   `json:"a,omitempty"` // unix milliseconds
	Until   int64   `json:"u,omitempty"` // unix milliseconds
	Config  string  `json:"c,omitempty"`
	Targets string  `json:"g,omitempty"`
	Changed int64   `json:"gt,omitempty"` // unix milliseconds
	PlanV   uint64  `json:"pv,omitempty"`
	PlanD   string  `json:"pd,omitempty"`
	PlanAt  int64   `json:"pa,omitempty"` // unix milliseconds
	// Quarantines, each "key.until.level": key hexadecimal, until in unix
	// seconds, level decimal.
	Quarantines []string `json:"q,omitempty"`
	// InFlight keys, hexadecimal.
	InFlight []string `json:"f,omitempty"`
}

func encodeQuarantine(q Quarantine) string {
	return strconv.FormatUint(q.Key, 16) + "." + strconv.FormatInt(q.Until.Unix(), 10) + "." + strconv.Itoa(q.Level)
}

// parseQuarantine parses one advertised quarantine; errors name the part.
func parseQuarantine(s string) (Quarantine, error) {
	parts := strings.Split(s, ".")
	if len(s) > 48 || len(parts) != 3 {
		return Quarantine{}, fmt.Errorf("quarantine must be key.until.level, got %.48q", s)
	}
	key, err := strconv.ParseUint(parts[0], 16, 64)
	if err != nil {
		return Quarantine{}, fmt.Errorf("quarantine %q: key must be hexadecimal", s)
	}
	until, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || until <= 0 {
		return Quarantine{}, fmt.Errorf("quarantine %q: until must be positive unix seconds", s)
	}
	level, err := strconv.Atoi(parts[2])
	if err != nil || level < 1 || level > maxQuarantineLevel {
		return Quarantine{}, fmt.Errorf("quarantine %q: level must be between 1 and %d", s, maxQuarantineLevel)
	}
	return Quarantine{Key: key, Until: time.Unix(until, 0), Level: level}, nil
}

// encodeMeta serializes m; the result fits in memberlist's metadata limit or
// an error says which field is too long.
func encodeMeta(m Meta) ([]byte, error) {
	w := wireMeta{
		V:       metaVersion,
		State:   m.State.String(),
		HTTP:    m.HTTPAddr,
		Version: m.Version,
		Weight:  m.Weight,
	}
	if m.Digest != 0 {
		w.Digest = strconv.FormatUint(m.Digest, 16)
	}
	w.Started, w.Since, w.Until = unixMilli(m.Started), unixMilli(m.Since), unixMilli(m.Until)
	if m.Discovery.Config != 0 {
		w.Config = strconv.FormatUint(m.Discovery.Config, 16)
	}
	if m.Discovery.Targets != 0 {
		w.Targets = strconv.FormatUint(m.Discovery.Targets, 16)
	}
	w.Changed = unixMilli(m.Discovery.Changed)
	if m.Plan.Version != 0 {
		w.PlanV, w.PlanD, w.PlanAt = m.Plan.Version, strconv.FormatUint(m.Plan.Digest, 16), unixMilli(m.Plan.At)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode node metadata: %w", err)
	}
	// Scrapes in flight, then quarantines, go in while they fit: the rest
	// of the record must.
	for _, k := range m.InFlight {
		if len(w.InFlight) == MaxInFlightAdvertised {
			break
		}
		w.InFlight = append(w.InFlight, strconv.FormatUint(k, 16))
		wf, err := json.Marshal(w)
		if err != nil || len(wf) > maxMetaSize {
			w.InFlight = w.InFlight[:len(w.InFlight)-1]
			break
		}
		b = wf
	}
	for _, q := range m.Quarantines {
		if len(w.Quarantines) == MaxQuarantinesAdvertised {
			break
		}
		w.Quarantines = append(w.Quarantines, encodeQuarantine(q))
		wq, err := json.Marshal(w)
		if err != nil || len(wq) > maxMetaSize {
			w.Quarantines = w.Quarantines[:len(w.Quarantines)-1]
			break
		}
		b = wq
	}
	if len(b) > maxMetaSize {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d: shorten the advertised http address (%d bytes) or version (%d bytes)",
			len(b), maxMetaSize, len(m.HTTPAddr), len(m.Version))
	}
	return b, nil
}

// Bounds on what a peer may claim in its metadata. They keep a peer (a bug,
// a bad clock, or whoever holds the key) from freezing ownership for longer
// than shoal itself ever would.
const (
	// MaxRestartGrace bounds --cluster.restart-grace, and so how far ahead a
	// leaving peer may say it keeps its targets: while it is away nobody
	// scrapes them, and beyond half an hour a gap in the data costs more
	// than moving the targets and back. A rolling restart (pull an image,
	// replay the WAL) takes minutes.
	MaxRestartGrace = 30 * time.Minute
	// ClaimSlack is how far beyond the handoff lead (or MaxRestartGrace) an
	// instant a peer announces may lie in the future: it absorbs clock skew
	// between hosts (NTP keeps it well under a second; a minute tolerates a
	// host that has drifted) and a peer configured with a somewhat longer
	// --cluster.handoff-lead while that flag is being changed fleet-wide.
	ClaimSlack = time.Minute
)

// Reasons a peer's metadata is refused, as labels of
// shoal_cluster_peer_meta_rejected_total.
const (
	reasonFormat  = "format"
	reasonAddress = "http_address"
	reasonWeight  = "weight"
	reasonInstant = "instant"
	reasonPlan    = "plan"
	// reasonQuarantine: too many quarantines or scrapes in flight, a
	// malformed one, or a quarantine that ends further ahead than
	// MaxQuarantineHold.
	reasonQuarantine = "quarantine"
)

// metaReasons are every reason label, for the metric's zero values.
var metaReasons = []string{reasonFormat, reasonAddress, reasonWeight, reasonInstant, reasonPlan, reasonQuarantine}

// refusal is an error in a peer's metadata, with its reason label.
type refusal struct {
	reason string
	err    error
}

func (r refusal) Error() string { return "node metadata: " + r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

func refuse(reason, format string, args ...any) error {
	return refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// reasonOf returns the reason label of an error from decodeMeta.
func reasonOf(err error) string {
	var r refusal
	if errors.As(err, &r) {
		return r.reason
	}
	return reasonFormat
}

// decodeMeta parses metadata received from the network and checks the
// peer's claims as of now, for a node whose own handoff lead is lead. It never
// panics and rejects anything a shoal agent would not have sent: an HTTP
// address that is not host:port (see ValidateHTTPAddr), a weight outside
// (0, ring.MaxWeight], a start time more than ClaimSlack ahead, an owning
// instant (Since) more than lead plus ClaimSlack ahead, and an end of
// ownership (Until) more than the longer of lead and MaxRestartGrace, plus
// ClaimSlack, ahead; a plan (pv, pd, pa) whose version is above
// MaxPlanVersion or that lacks its digest or instant, a plan digest or
// instant without a version, and a plan instant more than lead plus
// planFetchSlack plus ClaimSlack ahead. A member whose metadata is refused is
// kept out of memberlist and so of the ring.
func decodeMeta(b []byte, now time.Time, lead time.Duration) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, refuse(reasonFormat, "empty (not a shoal agent?)")
	}
	if len(b) > maxMetaSize {
		return Meta{}, refuse(reasonFormat, "%d bytes, limit is %d", len(b), maxMetaSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, refuse(reasonFormat, "decode: %w", err)
	}
	if w.V < 1 {
		return Meta{}, refuse(reasonFormat, "version must be >= 1, got %d", w.V)
	}
	st, err := parseState(w.State)
	if err != nil {
		return Meta{}, refuse(reasonFormat, "%w", err)
	}
	m := Meta{State: st, HTTPAddr: w.HTTP, Version: w.Version, Weight: w.Weight}
	for _, d := range []struct {
		name string
		s    string
		dst  *uint64
	}{
		{"digest", w.Digest, &m.Digest},
		{"config digest", w.Config, &m.Discovery.Config},
		{"targets digest", w.Targets, &m.Discovery.Targets},
		{"plan digest", w.PlanD, &m.Plan.Digest},
	} {
		if d.s == "" {
			continue
		}
		v, err := strconv.ParseUint(d.s, 16, 64)
		if err != nil {
			return Meta{}, refuse(reasonFormat, "%s must be hexadecimal, got %q", d.name, d.s)
		}
		*d.dst = v
	}
	if w.HTTP != "" {
		if err := ValidateHTTPAddr(w.HTTP); err != nil {
			return Meta{}, refuse(reasonAddress, "http address %q: %w", w.HTTP, err)
		}
	}
	if !(w.Weight > 0 && w.Weight <= maxWeight) {
		return Meta{}, refuse(reasonWeight, "weight must be above 0 and at most %d, got %v", maxWeight, w.Weight)
	}
	if w.Since < 0 || w.Until < 0 || w.Started < 0 || w.Changed < 0 || w.PlanAt < 0 {
		return Meta{}, refuse(reasonInstant, "times must not be negative, got started=%d since=%d until=%d targets changed=%d plan at=%d", w.Started, w.Since, w.Until, w.Changed, w.PlanAt)
	}
	switch {
	case w.PlanV == 0 && (w.PlanD != "" || w.PlanAt != 0):
		return Meta{}, refuse(reasonPlan, "plan digest %q or instant %d without a plan version", w.PlanD, w.PlanAt)
	case w.PlanV > MaxPlanVersion:
		return Meta{}, refuse(reasonPlan, "plan version must be at most %d, got %d", uint64(MaxPlanVersion), w.PlanV)
	case w.PlanV != 0 && w.PlanD == "":
		return Meta{}, refuse(reasonPlan, "plan %d has no digest", w.PlanV)
	case w.PlanV != 0 && w.PlanAt == 0:
		return Meta{}, refuse(reasonPlan, "plan %d has no instant", w.PlanV)
	}
	m.Plan.Version, m.Plan.At = w.PlanV, fromUnixMilli(w.PlanAt)
	m.Started, m.Since, m.Until = fromUnixMilli(w.Started), fromUnixMilli(w.Since), fromUnixMilli(w.Until)
	m.Discovery.Changed = fromUnixMilli(w.Changed)
	for _, c := range []struct {
		name string
		t    time.Time
		max  time.Duration
	}{
		{"start time", m.Started, ClaimSlack},
		{"targets change", m.Discovery.Changed, ClaimSlack},
		{"owning instant (since)", m.Since, lead + ClaimSlack},
		{"plan instant", m.Plan.At, lead + planFetchSlack + ClaimSlack},
		{"end of ownership (until)", m.Until, max(lead, MaxRestartGrace) + ClaimSlack},
	} {
		if ahead := c.t.Sub(now); ahead > c.max {
			return Meta{}, refuse(reasonInstant, "%s is %s ahead, at most %s is allowed (handoff lead %s, restart grace up to %s, clock slack %s)",
				c.name, ahead.Round(time.Second), c.max, lead, MaxRestartGrace, ClaimSlack)
		}
	}
	if len(w.InFlight) > MaxInFlightAdvertised {
		return Meta{}, refuse(reasonQuarantine, "at most %d scrapes in flight may be advertised, got %d", MaxInFlightAdvertised, len(w.InFlight))
	}
	for _, f := range w.InFlight {
		k, err := strconv.ParseUint(f, 16, 64)
		if err != nil {
			return Meta{}, refuse(reasonQuarantine, "scrape in flight must be a hexadecimal key, got %.20q", f)
		}
		m.InFlight = append(m.InFlight, k)
	}
	if len(w.Quarantines) > MaxQuarantinesAdvertised {
		return Meta{}, refuse(reasonQuarantine, "at most %d quarantines may be advertised, got %d", MaxQuarantinesAdvertised, len(w.Quarantines))
	}
	for _, s := range w.Quarantines {
		q, err := parseQuarantine(s)
		if err != nil {
			return Meta{}, refuse(reasonQuarantine, "%w", err)
		}
		if ahead := q.Until.Sub(now); ahead > MaxQuarantineHold+ClaimSlack {
			return Meta{}, refuse(reasonQuarantine, "quarantine of %016x ends %s ahead, at most %s is allowed (longest hold %s, clock slack %s)",
				q.Key, ahead.Round(time.Second), MaxQuarantineHold+ClaimSlack, MaxQuarantineHold, ClaimSlack)
		}
		m.Quarantines = append(m.Quarantines, q)
	}
	return m, nil
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

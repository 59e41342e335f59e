package gossip

import (
	"encoding/json"
	"fmt"
	"strconv"
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
	Weight   float64   // ring weight, 0 = default
	// Since is when an active member starts owning keys; zero means since it
	// became active. Until is when a leaving member stops owning keys; zero
	// means at once. Both are announced ahead so that every member switches
	// owners at the same instant.
	Since, Until time.Time
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
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode node metadata: %w", err)
	}
	if len(b) > maxMetaSize {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d: shorten the advertised http address (%d bytes) or version (%d bytes)",
			len(b), maxMetaSize, len(m.HTTPAddr), len(m.Version))
	}
	return b, nil
}

// decodeMeta parses metadata received from the network. It never panics and
// rejects anything a shoal agent would not have sent.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, fmt.Errorf("node metadata is empty (not a shoal agent?)")
	}
	if len(b) > maxMetaSize {
		return Meta{}, fmt.Errorf("node metadata is %d bytes, limit is %d", len(b), maxMetaSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode node metadata: %w", err)
	}
	if w.V < 1 {
		return Meta{}, fmt.Errorf("node metadata version must be >= 1, got %d", w.V)
	}
	st, err := parseState(w.State)
	if err != nil {
		return Meta{}, fmt.Errorf("node metadata: %w", err)
	}
	m := Meta{State: st, HTTPAddr: w.HTTP, Version: w.Version, Weight: w.Weight}
	if w.Digest != "" {
		d, err := strconv.ParseUint(w.Digest, 16, 64)
		if err != nil {
			return Meta{}, fmt.Errorf("node metadata: digest must be hexadecimal, got %q", w.Digest)
		}
		m.Digest = d
	}
	m.Started, m.Since, m.Until = fromUnixMilli(w.Started), fromUnixMilli(w.Since), fromUnixMilli(w.Until)
	if w.Since < 0 || w.Until < 0 || w.Started < 0 {
		return Meta{}, fmt.Errorf("node metadata: times must not be negative, got started=%d since=%d until=%d", w.Started, w.Since, w.Until)
	}
	if w.Weight < 0 || w.Weight > maxWeight || w.Weight != w.Weight {
		return Meta{}, fmt.Errorf("node metadata: weight must be in [0, %d], got %v", maxWeight, w.Weight)
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

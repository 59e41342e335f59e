package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuarantineJudge(t *testing.T) {
	cfg := QuarantineConfig{Window: 10 * time.Minute, Backoff: 5 * time.Minute, MaxBackoff: 30 * time.Minute}
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	died := func(d time.Duration, m string) qEvent { return qEvent{at: at(d), member: m} }
	learned := func(d, until time.Duration, level int) qEvent {
		return qEvent{at: at(d), until: at(until), level: level}
	}
	type span struct {
		from, until time.Duration
		level       int
	}
	for _, tc := range []struct {
		name string
		evs  []qEvent
		want []span
	}{
		{"no event, no hold", nil, nil},
		{"one death makes a target suspect only", []qEvent{died(0, "a")}, nil},
		{"its next owner dying within the window holds it", []qEvent{died(0, "a"), died(30*time.Second, "b")},
			[]span{{30 * time.Second, 5*time.Minute + 30*time.Second, 1}}},
		{"the same agent dying twice holds nothing (it crash-loops on its own)", []qEvent{died(0, "a"), died(time.Minute, "a")}, nil},
		{"a third owner after the same agent twice: held", []qEvent{died(0, "a"), died(time.Minute, "a"), died(2*time.Minute, "b")},
			[]span{{2 * time.Minute, 7 * time.Minute, 1}}},
		{"two deaths further apart than the window: suspect only", []qEvent{died(0, "a"), died(11*time.Minute, "b")}, nil},
		{"the window slides", []qEvent{died(0, "a"), died(11*time.Minute, "b"), died(15*time.Minute, "c")},
			[]span{{15 * time.Minute, 20 * time.Minute, 1}}},
		{"a death while held changes nothing", []qEvent{died(0, "a"), died(time.Minute, "b"), died(3*time.Minute, "c")},
			[]span{{time.Minute, 6 * time.Minute, 1}}},
		{"one death on probation holds it again, twice as long", []qEvent{died(0, "a"), died(time.Minute, "b"), died(7*time.Minute, "c")},
			[]span{{time.Minute, 6 * time.Minute, 1}, {7 * time.Minute, 17 * time.Minute, 2}}},
		{"and again, up to the cap", []qEvent{died(0, "a"), died(time.Minute, "b"), died(7*time.Minute, "c"), died(18*time.Minute, "a"), died(39*time.Minute, "b"), died(70*time.Minute, "c")},
			[]span{{time.Minute, 6 * time.Minute, 1}, {7 * time.Minute, 17 * time.Minute, 2}, {18 * time.Minute, 38 * time.Minute, 3}, {39 * time.Minute, 69 * time.Minute, 4}, {70 * time.Minute, 100 * time.Minute, 5}}},
		{"after probation a single death is a suspect again", []qEvent{died(0, "a"), died(time.Minute, "b"), died(17*time.Minute, "c")},
			[]span{{time.Minute, 6 * time.Minute, 1}}},
		{"... and a second one starts over at the first back-off", []qEvent{died(0, "a"), died(time.Minute, "b"), died(17*time.Minute, "c"), died(18*time.Minute, "a")},
			[]span{{time.Minute, 6 * time.Minute, 1}, {18 * time.Minute, 23 * time.Minute, 1}}},
		{"a death caught scraping it holds it at once", []qEvent{{at: at(0), member: "a", caught: true}},
			[]span{{0, 5 * time.Minute, 1}}},
		{"... and on probation the next death doubles the hold", []qEvent{{at: at(0), member: "a", caught: true}, died(7*time.Minute, "b")},
			[]span{{0, 5 * time.Minute, 1}, {7 * time.Minute, 17 * time.Minute, 2}}},
		{"a suspect caught later is held at the first back-off", []qEvent{died(0, "a"), {at: at(time.Minute), member: "a", caught: true}},
			[]span{{time.Minute, 6 * time.Minute, 1}}},
		{"a hold a peer advertises holds it here", []qEvent{learned(0, 4*time.Minute, 1)}, []span{{0, 4 * time.Minute, 1}}},
		{"the latest advertised end wins", []qEvent{died(0, "a"), died(time.Minute, "b"), learned(time.Minute+time.Second, 6*time.Minute+800*time.Millisecond, 1)},
			[]span{{time.Minute, 6*time.Minute + 800*time.Millisecond, 1}}},
		{"an earlier advertised end does not shorten ours", []qEvent{died(0, "a"), died(time.Minute, "b"), learned(time.Minute+time.Second, 5*time.Minute, 1)},
			[]span{{time.Minute, 6 * time.Minute, 1}}},
		{"a learned level carries into probation", []qEvent{learned(0, 10*time.Minute, 2), died(12*time.Minute, "a")},
			[]span{{0, 10 * time.Minute, 2}, {12 * time.Minute, 32 * time.Minute, 3}}},
		{"a learned hold already over is ignored", []qEvent{learned(time.Minute, time.Minute, 1)}, nil},
		{"a learned hold clears suspects", []qEvent{died(0, "a"), learned(time.Second, time.Minute, 1), died(20*time.Minute, "b")}, []span{{time.Second, time.Minute, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holds, err := cfg.judge(tc.evs)
			require.NoError(t, err)
			var got []span
			for _, h := range holds {
				got = append(got, span{h.from.Sub(t0), h.until.Sub(t0), h.level})
			}
			require.Equal(t, tc.want, got)
		})
	}
	_, err := cfg.judge([]qEvent{died(time.Minute, "a"), died(0, "b")})
	require.ErrorIs(t, err, errUnsorted)
}

// TestQuarantineHoldEndsOnASecond: gossip carries whole seconds, so a hold
// decided at a fraction of a second ends on the next whole one, as peers
// that learn it end it.
func TestQuarantineHoldEndsOnASecond(t *testing.T) {
	cfg := DefaultQuarantineConfig()
	at := time.Unix(1_800_000_000, 300_000_000)
	h := cfg.newHold(at, 1, []string{"a", "b"})
	require.Equal(t, time.Unix(1_800_000_000+300+1, 0), h.until)
	h = cfg.newHold(time.Unix(1_800_000_000, 0), 40, nil)
	require.Equal(t, time.Unix(1_800_000_000, 0).Add(DefaultQuarantineMaxBackoff), h.until)
	require.Equal(t, maxLevel, h.level)
}

func TestHeldAt(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	holds := []qHold{{from: t0, until: t0.Add(time.Minute), level: 1}, {from: t0.Add(2 * time.Minute), until: t0.Add(4 * time.Minute), level: 2}}
	for _, tc := range []struct {
		at    time.Duration
		held  bool
		level int
	}{{-time.Second, false, 0}, {0, true, 1}, {59 * time.Second, true, 1}, {time.Minute, false, 0}, {3 * time.Minute, true, 2}, {4 * time.Minute, false, 0}, {time.Hour, false, 0}} {
		h, ok := heldAt(holds, t0.Add(tc.at))
		require.Equal(t, tc.held, ok, tc.at)
		require.Equal(t, tc.level, h.level, tc.at)
	}
	// For ownership a hold also reaches back: a failed member vanishes from
	// the ring's history, and nobody may seem to have owned the target just
	// before its hold began.
	for _, tc := range []struct {
		at    time.Duration
		held  bool
		level int
	}{{-holdLookback - time.Second, false, 0}, {-holdLookback, true, 1}, {-time.Second, true, 2}, {90 * time.Second, true, 2}, {4 * time.Minute, false, 0}} {
		h, ok := heldBack(holds, t0.Add(tc.at), holdLookback)
		require.Equal(t, tc.held, ok, tc.at)
		require.Equal(t, tc.level, h.level, tc.at)
	}
}

func TestQuarantineConfigValidate(t *testing.T) {
	require.NoError(t, DefaultQuarantineConfig().Validate())
	require.NoError(t, QuarantineConfig{}.Validate(), "0 disables")
	for _, tc := range []struct {
		cfg QuarantineConfig
		err string
	}{
		{QuarantineConfig{Window: -time.Second}, "--cluster.quarantine-window must not be negative, got -1s"},
		{QuarantineConfig{Window: 7 * time.Hour, Backoff: time.Minute, MaxBackoff: time.Hour}, "--cluster.quarantine-window must be at most 6h0m0s"},
		{QuarantineConfig{Window: time.Minute}, "--cluster.quarantine-backoff must be positive, got 0s"},
		{QuarantineConfig{Window: time.Minute, Backoff: time.Hour, MaxBackoff: time.Minute}, "--cluster.quarantine-max-backoff must be at least --cluster.quarantine-backoff (1h0m0s), got 1m0s"},
		{QuarantineConfig{Window: time.Minute, Backoff: time.Hour, MaxBackoff: 25 * time.Hour}, "--cluster.quarantine-max-backoff must be at most 24h0m0s"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.err)
	}
}

package gossip

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestClockPayload(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	got, ok := decodeClock(encodeClock(at))
	require.True(t, ok)
	require.True(t, got.Equal(at), "%v != %v", got, at)
	for _, b := range [][]byte{nil, {}, {clockPayloadVersion}, append([]byte{2}, make([]byte, 8)...), make([]byte, 10)} {
		_, ok := decodeClock(b)
		require.False(t, ok, "%v", b)
	}
}

func TestClocksEstimate(t *testing.T) {
	local := time.Unix(1_000_000, 0)
	// The peer is 5 s ahead; each sample's round trip is 2 ms, so the peer
	// read its clock 1 ms before the ack arrived.
	probe := func(c *clocks, offset, rtt time.Duration) {
		local = local.Add(time.Second)
		remote := local.Add(-rtt / 2).Add(offset)
		c.observe("b", remote, local, rtt)
	}
	t.Run("exact", func(t *testing.T) {
		c := newClocks()
		_, ok := c.estimate("b")
		require.False(t, ok)
		probe(c, 5*time.Second, 2*time.Millisecond)
		e, ok := c.estimate("b")
		require.True(t, ok)
		require.Equal(t, ClockEstimate{Offset: 5 * time.Second, Uncertainty: time.Millisecond, Samples: 1, At: local}, e)
	})
	t.Run("median outvotes a delayed ack", func(t *testing.T) {
		c := newClocks()
		for range 4 {
			probe(c, 5*time.Second, 2*time.Millisecond)
		}
		// An ack that waited 200 ms on its way back: its sample is 100 ms
		// off, with an uncertainty of 101 ms that covers it.
		local = local.Add(time.Second)
		c.observe("b", local.Add(-201*time.Millisecond).Add(5*time.Second), local, 202*time.Millisecond)
		e, _ := c.estimate("b")
		require.Equal(t, 5*time.Second, e.Offset)
		require.Equal(t, time.Millisecond, e.Uncertainty)
		require.Equal(t, 5, e.Samples)
	})
	t.Run("window forgets old samples", func(t *testing.T) {
		c := newClocks()
		for range clockWindow {
			probe(c, -60*time.Second, 2*time.Millisecond)
		}
		// The peer's clock was stepped (NTP fixed it): once most of the
		// window has the new offset, the estimate follows.
		for range clockWindow/2 + 1 {
			probe(c, 0, 2*time.Millisecond)
		}
		e, _ := c.estimate("b")
		require.Equal(t, time.Duration(0), e.Offset)
		require.Equal(t, clockWindow, e.Samples)
	})
	t.Run("negative round trip ignored, forget", func(t *testing.T) {
		c := newClocks()
		c.observe("b", local, local, -time.Millisecond)
		_, ok := c.estimate("b")
		require.False(t, ok)
		probe(c, time.Second, 0)
		c.forget("b")
		_, ok = c.estimate("b")
		require.False(t, ok)
	})
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3}, 3},
		{[]time.Duration{5, 1, 3}, 3},
		{[]time.Duration{0, 5}, 2},
		{[]time.Duration{4, -2, 0, 10}, 2},
	} {
		require.Equal(t, tc.want, median(tc.in), "%v", tc.in)
	}
}

func TestParseClockBound(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClockBound
		err  string
	}{
		{in: "25%", want: ClockBound{Share: 0.25}},
		{in: "100%", want: ClockBound{Share: 1}},
		{in: "500ms", want: ClockBound{Max: 500 * time.Millisecond}},
		{in: "0%", err: `percentage of the shortest scrape interval above 0% and at most 100% such as 25%, got "0%"`},
		{in: "150%", err: `got "150%"`},
		{in: "x%", err: `got "x%"`},
		{in: "0s", err: `must be a positive duration such as 500ms or a percentage of the shortest scrape interval such as 25%, got "0s"`},
		{in: "-1s", err: `got "-1s"`},
		{in: "soon", err: `--cluster.max-clock-offset must be a positive duration`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			b, err := ParseClockBound(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, b)
			require.Equal(t, tc.in, b.String())
		})
	}
	require.Equal(t, 500*time.Millisecond, ClockBound{Share: 0.25}.resolve(2*time.Second))
	require.Equal(t, 15*time.Second, ClockBound{Share: 0.25}.resolve(0), "no job: a share of Prometheus' default interval")
	require.Equal(t, time.Second, ClockBound{Max: time.Second}.resolve(2*time.Second))
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr = "a", "127.0.0.1:0"
	cfg.MaxClockOffset = ClockBound{}
	require.ErrorContains(t, cfg.Validate(), "--cluster.max-clock-offset must be a positive duration")
}

func TestClockStatus(t *testing.T) {
	n, err := New(func() Config {
		c := DefaultConfig()
		c.Name, c.BindAddr = "a", "127.0.0.1:0"
		c.MaxClockOffset = ClockBound{Max: time.Second}
		return c
	}(), nil, nil)
	require.NoError(t, err)
	peer := func(name string, st State, offset time.Duration) Peer {
		p := Peer{Name: name, State: st, ClockOffset: offset, ClockUncertainty: time.Millisecond, ClockSamples: 3}
		if offset == -1 {
			p.ClockOffset, p.ClockSamples = 0, 0 // not measured
		}
		return p
	}
	self := func(st State) Peer { return Peer{Name: "a", Self: true, State: st} }
	for _, tc := range []struct {
		name     string
		peers    []Peer
		offset   time.Duration
		measured int
		in       bool
	}{
		{"alone", []Peer{self(StateActive)}, 0, 0, true},
		{"nothing measured yet", []Peer{self(StateJoining), peer("b", StateActive, -1)}, 0, 0, true},
		// A joining agent 5 s behind its two active peers.
		{"joining behind", []Peer{self(StateJoining), peer("b", StateActive, 5*time.Second), peer("c", StateActive, 5*time.Second)}, -5 * time.Second, 2, false},
		// A healthy active agent sees one skewed active peer: outvoted.
		{"one skewed peer", []Peer{self(StateActive), peer("b", StateActive, 5*time.Second), peer("c", StateActive, 0)}, 0, 2, true},
		// A skewed joining peer does not count while active members exist.
		{"joining peer skewed", []Peer{self(StateActive), peer("b", StateJoining, 60*time.Second)}, 0, 0, true},
		// Two active members 5 s apart: nobody can tell which is wrong,
		// both are out of bound.
		{"two apart", []Peer{self(StateActive), peer("b", StateActive, 5*time.Second)}, -2500 * time.Millisecond, 1, false},
		// Nobody active yet (a fleet starting): every alive member counts.
		{"all joining", []Peer{self(StateJoining), peer("b", StateJoining, 200*time.Millisecond), peer("c", StateJoining, 300*time.Millisecond)}, -200 * time.Millisecond, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := n.clockStatus(tc.peers)
			require.Equal(t, tc.offset, st.Offset)
			require.Equal(t, tc.measured, st.Measured)
			require.Equal(t, tc.in, st.InBound)
			require.Equal(t, time.Second, st.Bound)
			if tc.in {
				require.Empty(t, st.Reason())
			} else {
				require.Contains(t, st.Reason(), "more than --cluster.max-clock-offset 1s: fix its time synchronisation (NTP")
			}
		})
	}
}

// TestClockSkewMeasuredAndHeldOut runs a real cluster: a node whose clock is
// 5 s behind joins two healthy ones. They measure its offset from their
// probes, and it measures theirs, finds itself out of bound and stays out
// of the ring, saying why; with a wider bound it joins.
func TestClockSkewMeasuredAndHeldOut(t *testing.T) {
	bound := func(d time.Duration) func(*Config) {
		return func(c *Config) { c.MaxClockOffset = ClockBound{Max: d} }
	}
	a := startNode(t, "a", nil, bound(time.Second))
	waitActive(t, a)
	b := startNode(t, "b", []string{a.Addr()}, bound(time.Second))
	waitActive(t, b)

	s := startNode(t, "s", []string{a.Addr()}, func(c *Config) { bound(time.Second)(c); c.ClockOffset = -5 * time.Second })

	// The healthy nodes measure s 5 s behind them.
	for _, n := range []*testNode{a, b} {
		require.Eventually(t, func() bool {
			for _, p := range n.Peers() {
				if p.Name == "s" && p.ClockSamples > 0 {
					return (p.ClockOffset+5*time.Second).Abs() < 100*time.Millisecond && p.ClockUncertainty < 50*time.Millisecond
				}
			}
			return false
		}, 15*time.Second, 20*time.Millisecond, "%s measures s", n.Name())
	}
	// s finds itself out of bound, stays joining and says why.
	require.Eventually(t, func() bool {
		return strings.Contains(s.NotReadyReason(), "clock is 5")
	}, 15*time.Second, 20*time.Millisecond, "reason: %s", s.NotReadyReason())
	st := s.ClockStatus()
	require.False(t, st.InBound)
	require.InDelta(t, -5, st.Offset.Seconds(), 0.1)
	require.Contains(t, s.NotReadyReason(), "behind the cluster's")
	require.Equal(t, StateJoining, s.State())
	require.Never(t, func() bool { return s.State() != StateJoining || a.Ring().Len() != 2 }, time.Second, 50*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.clockOut), "counted once")
	// The collector of s, on a registry of the test's.
	reg := prometheus.NewRegistry()
	_, err := newMetrics(s.Node, reg)
	require.NoError(t, err)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var got []string
	for _, mf := range mfs {
		switch mf.GetName() {
		case "shoal_cluster_peer_clock_offset_seconds", "shoal_cluster_clock_in_bound", "shoal_cluster_clock_offset_seconds":
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				got = append(got, fmt.Sprintf("%s{%s}=%.0f", mf.GetName(), strings.Join(ls, ","), m.GetGauge().GetValue()))
			}
		}
	}
	require.Contains(t, got, "shoal_cluster_clock_in_bound{}=0")
	require.Contains(t, got, "shoal_cluster_clock_offset_seconds{}=-5")
	require.Contains(t, got, "shoal_cluster_peer_clock_offset_seconds{peer=a}=5")
	require.NoError(t, s.stop())

	// With a bound above the skew, the same node joins.
	w := startNode(t, "w", []string{a.Addr()}, func(c *Config) { bound(10 * time.Second)(c); c.ClockOffset = -5 * time.Second })
	waitActive(t, w)
	require.True(t, w.ClockStatus().InBound)
}

func waitActive(t *testing.T, n *testNode) {
	t.Helper()
	require.Eventually(t, func() bool { return n.State() == StateActive }, 15*time.Second, 10*time.Millisecond, "%s: %s", n.Name(), n.NotReadyReason())
}

// TestClockBackInBoundJoins: a node held out for its clock joins by itself
// once its clock is fixed (here, the injected clock's offset set to 0).
func TestClockBackInBoundJoins(t *testing.T) {
	var skew atomic.Int64
	skew.Store(int64(-3 * time.Second))
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	bound := func(c *Config) { c.MaxClockOffset = ClockBound{Max: 500 * time.Millisecond} }
	a := startNode(t, "a", nil, bound)
	waitActive(t, a)
	s := startNode(t, "s", []string{a.Addr()}, func(c *Config) { bound(c); c.Clock = clock })
	require.Eventually(t, func() bool { return strings.Contains(s.NotReadyReason(), "3s behind") }, 15*time.Second, 20*time.Millisecond, "reason: %s", s.NotReadyReason())
	require.Equal(t, StateJoining, s.State())

	skew.Store(0) // NTP stepped the clock
	waitActive(t, s)
	require.Eventually(t, func() bool { return s.ClockStatus().InBound && a.Ring().Len() == 2 }, 15*time.Second, 20*time.Millisecond)
	require.Less(t, s.ClockStatus().Offset.Abs(), 100*time.Millisecond)
}

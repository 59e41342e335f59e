package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var histT0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return histT0.Add(time.Duration(s) * time.Second) }

func TestHistoryRing(t *testing.T) {
	h := newHistory(15*time.Second, 3)
	require.Equal(t, 45*time.Second, h.span())
	require.Empty(t, h.samples())
	for i := range 6 {
		h.add(sample{t: at(15 * i), moves: uint64(i)})
	}
	var got []uint64
	for _, s := range h.samples() {
		got = append(got, s.moves)
	}
	require.Equal(t, []uint64{2, 3, 4, 5}, got, "the last intervals+1 samples, oldest first")
}

func TestIntervals(t *testing.T) {
	ss := []sample{
		{t: at(0), sent: map[string]uint64{"a": 100}, moves: 3},
		{t: at(15), sent: map[string]uint64{"a": 400, "b": 150}, moves: 3},  // b opened by a reload: counts from 0
		{t: at(30), sent: map[string]uint64{"a": 100, "b": 300}, moves: 10}, // a re-opened: its counter restarted
		{t: at(30), sent: map[string]uint64{"a": 200}, moves: 10},           // no time passed: no interval
		{t: at(40), sent: map[string]uint64{"a": 200}, moves: 12},
	}
	got := intervals(ss)
	require.Equal(t, []interval{
		{start: at(0), end: at(15), sentRate: (300 + 150) / 15.0, moves: 0},
		{start: at(15), end: at(30), sentRate: (100 + 150) / 15.0, moves: 7},
		{start: at(30), end: at(40), sentRate: 0, moves: 2},
	}, got)
	require.Empty(t, intervals(ss[:1]))
}

func TestSendRate(t *testing.T) {
	var ss []sample
	for i := range 10 {
		ss = append(ss, sample{t: at(15 * i), sent: map[string]uint64{"a": uint64(1000 * i)}})
	}
	// Now is 140 s: the newest sample at least a minute before it is the
	// one at 75 s, 65 s back.
	cur := sample{t: at(140), sent: map[string]uint64{"a": 9000 + 650}}
	rate, over, ok := sendRate(ss, cur, "a", time.Minute)
	require.True(t, ok)
	require.Equal(t, 65*time.Second, over)
	require.InDelta(t, float64(9650-5000)/65, rate, 1e-9)

	// A history shorter than the window: from its oldest sample.
	rate, over, ok = sendRate(ss[8:], cur, "a", time.Minute)
	require.True(t, ok)
	require.Equal(t, 20*time.Second, over)
	require.InDelta(t, float64(9650-8000)/20, rate, 1e-9)

	_, _, ok = sendRate(nil, cur, "a", time.Minute)
	require.False(t, ok, "no earlier sample")
	_, _, ok = sendRate([]sample{cur}, cur, "a", time.Minute)
	require.False(t, ok, "a sample at the same instant is no baseline")
	rate, _, ok = sendRate(ss, cur, "gone", time.Minute)
	require.True(t, ok)
	require.Zero(t, rate)
}

// TestHistoryRun: the sampler takes a baseline at once, then one sample
// per step, and returns when its context ends.
func TestHistoryRun(t *testing.T) {
	h := newHistory(10*time.Millisecond, 5)
	var n atomic.Uint64
	take := func() sample {
		v := n.Add(1)
		return sample{t: at(int(v)), moves: v}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.run(ctx, take) }()
	require.Eventually(t, func() bool { return len(h.samples()) == 6 }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the sampler did not stop")
	}
	ss := h.samples()
	require.Len(t, ss, 6, "a full history keeps intervals+1 samples")
	for i := 1; i < len(ss); i++ {
		require.Equal(t, ss[i-1].moves+1, ss[i].moves, "in order")
	}
}

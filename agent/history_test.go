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
// per tick, at the clock take reads, and returns when its context ends; a
// full history keeps the newest samples.
func TestHistoryRun(t *testing.T) {
	h := newHistory(15*time.Second, 5)
	var clock atomic.Int64 // seconds after histT0, advanced by the test
	var n atomic.Uint64
	take := func() sample { return sample{t: at(int(clock.Load())), moves: n.Add(1)} }
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.run(ctx, ticks, take) }()
	require.Eventually(t, func() bool { return len(h.samples()) == 1 }, 10*time.Second, time.Millisecond, "the baseline is taken at once")
	for i := 1; i <= 7; i++ {
		clock.Store(int64(15 * i))
		ticks <- at(15 * i) // returns once the sampler has it: it adds the sample before it can see ctx done
		require.Eventually(t, func() bool { return n.Load() == uint64(i+1) }, 10*time.Second, time.Millisecond, "the sampler reads the clock at tick %d", i)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the sampler did not stop")
	}
	var moves []uint64
	var times []time.Time
	for _, s := range h.samples() {
		moves, times = append(moves, s.moves), append(times, s.t)
	}
	require.Equal(t, []uint64{3, 4, 5, 6, 7, 8}, moves, "a full history keeps intervals+1 samples, oldest first")
	require.Equal(t, []time.Time{at(30), at(45), at(60), at(75), at(90), at(105)}, times)
}

package goruntime

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"
)

const gib = 1 << 30

// parse returns the Config the flags make, with provider.
func parse(t *testing.T, provider memlimit.Provider, args ...string) Config {
	t.Helper()
	app := kingpin.New("shoal", "")
	c := DefaultConfig()
	c.RegisterFlags(app)
	_, err := app.Parse(args)
	require.NoError(t, err)
	c.provider = provider
	return c
}

// keepMemLimit restores the runtime's memory limit after the test.
func keepMemLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	debug.SetMemoryLimit(math.MaxInt64)
}

// TestApply runs the flags against a container limit, none, and one that
// cannot be read. Not parallel: the memory limit is the process'.
func TestApply(t *testing.T) {
	limit1G := memlimit.Limit(gib)
	noLimit := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	broken := func() (uint64, error) { return 0, errors.New("cannot read memory.max") }
	for _, tc := range []struct {
		name     string
		provider memlimit.Provider
		args     []string
		env      string // $GOMEMLIMIT
		want     int64  // limit set; 0: untouched
	}{
		{"default ratio", limit1G, nil, "", gib * 9 / 10},
		{"explicit ratio", limit1G, []string{"--auto-gomemlimit.ratio=0.5"}, "", gib / 2},
		{"ratio from the environment twin", limit1G, nil, "", gib / 4},
		{"off", limit1G, []string{"--no-auto-gomemlimit"}, "", 0},
		{"no limit", noLimit, nil, "", 0},
		{"unreadable limit", broken, nil, "", 0},
		{"GOMEMLIMIT wins", limit1G, nil, "123MiB", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keepMemLimit(t)
			if tc.env != "" {
				t.Setenv("GOMEMLIMIT", tc.env)
			}
			if tc.name == "ratio from the environment twin" {
				t.Setenv("SHOAL_AUTO_GOMEMLIMIT_RATIO", "0.25")
			}
			c := parse(t, tc.provider, tc.args...)
			require.NoError(t, c.Validate())
			got := c.Apply(nil)
			require.InDelta(t, tc.want, got, 1)
			now := debug.SetMemoryLimit(-1)
			if tc.want == 0 {
				require.Equal(t, int64(math.MaxInt64), now, "the limit was changed")
			} else {
				require.InDelta(t, tc.want, now, 1)
			}
		})
	}
}

func TestDefaultIsPrometheus(t *testing.T) {
	c := parse(t, nil)
	require.True(t, c.AutoMemLimit)
	require.Equal(t, 0.9, c.MemLimitRatio)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		err   string
	}{
		{0.9, ""},
		{1, ""},
		{0, "--auto-gomemlimit.ratio must be above 0 and at most 1, got 0"},
		{-0.5, "got -0.5"},
		{1.01, "got 1.01"},
		{math.NaN(), "got NaN"},
	} {
		err := Config{AutoMemLimit: true, MemLimitRatio: tc.ratio}.Validate()
		if tc.err == "" {
			require.NoError(t, err, tc.ratio)
			continue
		}
		require.ErrorContains(t, err, tc.err)
	}
}

func TestSetGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	SetGCPercent(75, nil)
	require.Equal(t, 75, debug.SetGCPercent(75))
	SetGCPercent(-1, nil)
	require.Equal(t, -1, debug.SetGCPercent(-1))
}

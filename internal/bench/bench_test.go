package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func validConfig() Config {
	return Config{
		Targets: 1, Series: 0, Interval: time.Second, Duration: time.Second, Count: 1,
		NonOwnedTargets: 1, ShoalBin: "shoal", PrometheusBin: "prometheus", Out: "out",
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, validConfig().Validate())
	for _, tc := range []struct {
		modify func(*Config)
		err    string
	}{
		{func(c *Config) { c.Targets = 0 }, "targets must be at least 1, got 0"},
		{func(c *Config) { c.Series = -1 }, "series must not be negative, got -1"},
		{func(c *Config) { c.Interval = 500 * time.Millisecond }, "interval must be at least 1s, got 500ms"},
		{func(c *Config) { c.Duration = 999 * time.Millisecond }, "duration must be at least one interval (1s), got 999ms"},
		{func(c *Config) { c.Count = 0 }, "count must be at least 1, got 0"},
		{func(c *Config) { c.NonOwnedTargets = 0 }, "non-owned targets must be between 1 and 15625000, got 0"},
		{func(c *Config) { c.PrometheusBin = "" }, "binaries are required"},
		{func(c *Config) { c.Out = "" }, "output directory"},
	} {
		c := validConfig()
		tc.modify(&c)
		require.ErrorContains(t, c.Validate(), tc.err)
	}
}

func TestDeadInstances(t *testing.T) {
	ins := deadInstances("dead", 70_000)
	seen := map[string]bool{}
	for _, in := range ins {
		require.False(t, seen[in.Addr], "address %s twice", in.Addr)
		seen[in.Addr] = true
		require.Regexp(t, `^127\.[1-9]\.\d+\.\d+:9$`, in.Addr)
	}
	require.Equal(t, Instance{ID: "dead-0", Addr: "127.1.0.1:9"}, ins[0])
	require.Equal(t, Instance{ID: "dead-251", Addr: "127.1.1.2:9"}, ins[251])
	require.Equal(t, "127.2.0.1:9", ins[62_500].Addr)
}

func TestNonOwnedResultLine(t *testing.T) {
	r := NonOwnedResult{
		Agent: "a-0", Discovered: 1000, Owned: 400,
		Base:      memReading{heap: 10_000_000, inuse: 12_000_000, rss: 50_000_000},
		All:       memReading{heap: 14_600_000, inuse: 17_000_000, rss: 60_000_000},
		OwnedOnly: memReading{heap: 14_000_000, inuse: 16_000_000, rss: 59_000_000},
	}
	line := r.Line()
	require.True(t, strings.HasPrefix(line, "NONOWNED agent=a-0 discovered=1000 owned=400 heap_base=10000000 "), line)
	// (14.6M - 14.0M) / 600 non-owned; (14.0M - 10.0M) / 400 owned.
	require.Contains(t, line, " heap_b_per_nonowned=1000.0 heap_b_per_owned=10000.0 rss_b_per_nonowned=1666.7")
}

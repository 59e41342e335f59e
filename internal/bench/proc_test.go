package bench

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       CPUTimes
		err        string
	}{
		{
			name: "plain",
			stat: "29009 (cat) R 29005 29005 2611 0 -1 4194304 100 0 0 0 1234 56 0 0 20 0 1 0 152796 3133440 416 18446744073709551615 0\n",
			want: CPUTimes{User: 12340 * time.Millisecond, System: 560 * time.Millisecond},
		},
		{
			name: "command with spaces and parentheses",
			stat: "7 (my (odd) cmd) S 1 7 7 0 -1 4194560 5 0 0 0 3 1 0 0 20 0 1 0 1 0 0",
			want: CPUTimes{User: 30 * time.Millisecond, System: 10 * time.Millisecond},
		},
		{name: "no command", stat: "1 cat R 1 2", err: "no ')'"},
		{name: "truncated", stat: "1 (cat) R 1 2 3", err: "fields after the command name"},
		{name: "bad utime", stat: "1 (cat) R 1 1 1 0 -1 0 0 0 0 0 x 1 0 0", err: "utime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.stat))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want.User+tc.want.System, got.Total())
		})
	}
}

func TestParseStatus(t *testing.T) {
	const status = "Name:\tshoal\nVmPeak:\t 2000000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   71680 kB\nRssFile:\t   30720 kB\nThreads:\t12\n"
	got, err := ParseStatus([]byte(status))
	require.NoError(t, err)
	require.Equal(t, Memory{RSS: 100 << 20, HWM: 200 << 20, Anon: 70 << 20}, got)
	// Before Linux 4.5 there is no RssAnon.
	got, err = ParseStatus([]byte("VmHWM:\t2 kB\nVmRSS:\t1 kB\n"))
	require.NoError(t, err)
	require.Equal(t, Memory{RSS: 1 << 10, HWM: 2 << 10}, got)

	_, err = ParseStatus([]byte("Name:\tzombie\nState:\tZ (zombie)\n"))
	require.ErrorContains(t, err, "exited")
	_, err = ParseStatus([]byte("VmHWM:\t1 MB\nVmRSS:\t1 kB\n"))
	require.ErrorContains(t, err, "VmHWM")
}

// The parsers read this very process.
func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cpu, err := ReadCPU(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, cpu.Total(), time.Duration(0))
	mem, err := ReadMemory(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, mem.RSS)
	require.GreaterOrEqual(t, mem.HWM, mem.RSS)
	require.Positive(t, mem.Anon)
	require.Less(t, mem.Anon, mem.RSS, "the binary's pages are resident too")
}

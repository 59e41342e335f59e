package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const topOutput = `File: shoal
Build ID: 15cf8f05a7957ea5241d3e0c4eb923846e0f0b99
Type: cpu
Time: 2026-11-22 10:59:31 UTC
Duration: 30s, Total samples = 2.80s ( 9.33%)
Showing nodes accounting for 2.10s, 75.00% of 2.80s total
Dropped 12 nodes (cum <= 0.01s)
Showing top 3 nodes out of 60
      flat  flat%   sum%        cum   cum%
     1.20s 42.86% 42.86%      1.20s 42.86%  runtime.memmove
     0.50s 17.86% 60.71%      0.90s 32.14%  github.com/shoal-dev/shoal/scrape.(*Filter).pass
     0.40s 14.29% 75.00%      0.40s 14.29%  github.com/prometheus/prometheus/model/labels.(*Builder).Labels (inline)
         0     0% 75.00%      2.00s 71.43%  main.run
`

func TestParseTop(t *testing.T) {
	top, err := ParseTop(topOutput)
	require.NoError(t, err)
	require.Equal(t, []string{
		"Type: cpu",
		"Duration: 30s, Total samples = 2.80s ( 9.33%)",
		"Showing nodes accounting for 2.10s, 75.00% of 2.80s total",
		"Showing top 3 nodes out of 60",
	}, top.Summary)
	require.Len(t, top.Entries, 4)
	require.Equal(t, TopEntry{Flat: "0.50s", FlatPct: "17.86%", SumPct: "60.71%", Cum: "0.90s", CumPct: "32.14%",
		Func: "github.com/shoal-dev/shoal/scrape.(*Filter).pass"}, top.Entries[1])
	require.Equal(t, "github.com/prometheus/prometheus/model/labels.(*Builder).Labels (inline)", top.Entries[2].Func)

	var b bytes.Buffer
	top.Format(&b, "CPU top by flat")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Equal(t, "CPU top by flat", lines[0])
	var marked []string
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "*") {
			marked = append(marked, l[strings.LastIndexByte(l, ' ')+1:])
		}
	}
	require.Equal(t, []string{"github.com/shoal-dev/shoal/scrape.(*Filter).pass", "main.run"}, marked)

	_, err = ParseTop("File: x\nType: cpu\n")
	require.ErrorContains(t, err, "no table header")
	_, err = ParseTop("      flat  flat%   sum%        cum   cum%\n 1s 2% 3%\n")
	require.ErrorContains(t, err, "want 5 figures")
}

func TestIsShoal(t *testing.T) {
	require.True(t, IsShoal("github.com/shoal-dev/shoal/gossip/ring.(*Ring).Owners"))
	require.True(t, IsShoal("main.main"))
	require.False(t, IsShoal("github.com/shoal-dev/shoalish.F"))
	require.False(t, IsShoal("runtime.mallocgc"))
}

// PprofTop runs the real go tool on a heap profile of this test.
func TestPprofTop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool pprof")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go binary in PATH")
	}
	file := filepath.Join(t.TempDir(), "heap.pprof")
	f, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, pprof.Lookup("heap").WriteTo(f, 0))
	require.NoError(t, f.Close())

	top, err := PprofTop(t.Context(), goBin, file, "-nodecount=5", "-sample_index=alloc_space")
	require.NoError(t, err)
	require.NotEmpty(t, top.Entries)
	require.LessOrEqual(t, len(top.Entries), 5)

	_, err = PprofTop(t.Context(), goBin, filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}

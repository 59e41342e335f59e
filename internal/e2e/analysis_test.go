package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAnalyze(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const iv = 2 * time.Second
	w := Window{Start: t0, End: t0.Add(10 * iv), Interval: iv}
	// at makes samples of one agent at t0+offset+k*iv for k in ks, with
	// counter value base+k.
	at := func(agent string, offset time.Duration, base float64, ks ...int) []Sample {
		var out []Sample
		for _, k := range ks {
			out = append(out, Sample{T: t0.Add(offset + time.Duration(k)*iv), V: base + float64(k), Agent: agent})
		}
		return out
	}
	merge := func(parts ...[]Sample) []Sample {
		var out []Sample
		for _, p := range parts {
			out = append(out, p...)
		}
		s := Samples{"x": out}
		for _, ss := range s {
			sortSamples(ss)
		}
		return s["x"]
	}
	// sec makes one sample at t0 plus seconds.
	sec := func(agent string, seconds, v float64) Sample {
		return Sample{T: t0.Add(time.Duration(seconds * float64(time.Second))), V: v, Agent: agent}
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

	for _, tc := range []struct {
		name    string
		samples []Sample
		want    Stats
	}{
		{
			name:    "one agent, every interval",
			samples: at("a", 500*time.Millisecond, 10, all...),
			want:    Stats{Samples: 10, Agents: []string{"a"}, MaxGap: iv},
		},
		{
			name:    "a missed scrape is a gap and a missing value",
			samples: at("a", 500*time.Millisecond, 10, 0, 1, 2, 4, 5, 6, 7, 8, 9),
			want:    Stats{Samples: 9, Agents: []string{"a"}, MaxGap: 2 * iv, Gaps: 1, Missing: 1},
		},
		{
			name: "clean handoff",
			samples: merge(
				at("a", 500*time.Millisecond, 10, 0, 1, 2, 3, 4),
				// b scrapes with another offset and continues the counter.
				at("b", 1500*time.Millisecond, 10, 4, 5, 6, 7, 8, 9)[1:],
			),
			want: Stats{Samples: 10, Agents: []string{"a", "b"}, MaxGap: 3 * iv / 2},
		},
		{
			name: "two agents at once",
			samples: []Sample{
				sec("a", 2, 1), sec("a", 4, 2), sec("b", 5, 3), sec("a", 6, 4),
				sec("b", 7, 5), sec("a", 8, 6), sec("a", 10, 7),
			},
			// b's two samples lie inside a's span, and a's at 6 s inside b's.
			want: Stats{Samples: 7, Agents: []string{"a", "b"}, MaxGap: 5 * iv, Gaps: 1, Overlaps: 3},
		},
		{
			name:    "two scrapes in one series",
			samples: []Sample{sec("", 2, 1), sec("", 4, 2), sec("", 4.5, 3), sec("", 6, 4)},
			want:    Stats{Samples: 4, Agents: []string{""}, MaxGap: 7 * iv, Gaps: 1, Close: 1},
		},
		{
			name:    "counter repeated, and skipped without a gap (fenced scrapes)",
			samples: []Sample{sec("a", 2, 1), sec("a", 4, 1), sec("a", 6, 4)},
			want:    Stats{Samples: 3, Agents: []string{"a"}, MaxGap: 7 * iv, Gaps: 1, Repeats: 1, Fenced: 2},
		},
		{
			name:    "values skipped across a gap are missing, the rest fenced",
			samples: []Sample{sec("a", 2, 1), sec("a", 8, 5), sec("a", 10, 6)},
			want:    Stats{Samples: 3, Agents: []string{"a"}, MaxGap: 5 * iv, Gaps: 2, Missing: 2, Fenced: 1},
		},
		{
			name: "a gap at the window's start counts against the sample before it",
			// The sample at -1 s is the baseline only: values 2 to 4 of
			// the slots at 1, 3 and 5 s never arrived.
			samples: []Sample{sec("a", -1, 1), sec("a", 7, 5), sec("a", 9, 6)},
			want:    Stats{Samples: 2, Agents: []string{"a"}, MaxGap: 11 * time.Second, Gaps: 2, Missing: 3},
		},
		{
			name: "no samples",
			want: Stats{MaxGap: 10 * iv, Gaps: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Analyze("x", tc.samples, w, true)
			tc.want.Instance = "x"
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSummary(t *testing.T) {
	sum := Summarize([]Stats{
		{Instance: "a", Samples: 10, MaxGap: 2 * time.Second},
		{Instance: "b", Samples: 9, MaxGap: 4 * time.Second, Gaps: 1, Missing: 1},
		{Instance: "c", Samples: 11, Overlaps: 1, MaxGap: time.Second},
	})
	require.Equal(t, "targets=3 samples_checked=30 samples_per_target=9..11 gaps=1 max_gap_s=4.000 duplicates=1 overlaps=1 close=0 repeats=0 missing=1", sum.String())
	require.Equal(t, "b", sum.MaxGapInstance)
}

func TestWindowExpected(t *testing.T) {
	t0 := time.Unix(0, 0)
	require.Equal(t, 10, Window{Start: t0, End: t0.Add(20 * time.Second), Interval: 2 * time.Second}.Expected())
	require.Equal(t, 10, Window{Start: t0, End: t0.Add(21 * time.Second), Interval: 2 * time.Second}.Expected())
}

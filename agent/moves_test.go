package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/scrape"
)

func staticView(t *testing.T, at time.Time, names ...string) gossip.View {
	t.Helper()
	v, err := gossip.NewStaticView("a", 1, at, ring.Names(names...))
	require.NoError(t, err)
	return v
}

func peersOf(states map[string]gossip.State) func() []gossip.Peer {
	return func() []gossip.Peer {
		var ps []gossip.Peer
		for name, st := range states {
			ps = append(ps, gossip.Peer{Name: name, State: st})
		}
		return ps
	}
}

func moveTargets(n int) []scrape.TargetInfo {
	ts := make([]scrape.TargetInfo, n)
	for i := range ts {
		url := fmt.Sprintf("http://10.0.0.%d:9100/metrics", i)
		ts[i] = scrape.TargetInfo{Job: "app", URL: url, Key: ring.Key("app\x00" + url)}
	}
	return ts
}

func TestMoveLogObserve(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	targets := moveTargets(300)
	ab := map[string]gossip.State{"a": gossip.StateActive, "b": gossip.StateActive}
	abc := map[string]gossip.State{"a": gossip.StateActive, "b": gossip.StateActive, "c": gossip.StateActive}
	steps := []struct {
		name   string
		view   gossip.View
		states map[string]gossip.State
		reads  bool // peers and targets are read
		reason string
		from   *ring.Ring // nil: nothing moves
		to     *ring.Ring
	}{
		{"first view places targets", staticView(t, t0, "a", "b"), ab, true, "", nil, nil},
		{"same view, later", staticView(t, t0.Add(time.Second), "a", "b"), ab, false, "", nil, nil},
		{"c joins", staticView(t, t0.Add(2*time.Second), "a", "b", "c"), abc, true, "c joined (active)",
			ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b", "c")...)},
		{"b fails", staticView(t, t0.Add(3*time.Second), "a", "c"), map[string]gossip.State{"a": gossip.StateActive, "c": gossip.StateActive}, true, "b failed",
			ring.MustNew(ring.Names("a", "b", "c")...), ring.MustNew(ring.Names("a", "c")...)},
	}
	l := newMoveLog(moveLogSize)
	var total uint64
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			reads := 0
			l.observe(st.view, func() []gossip.Peer { reads++; return peersOf(st.states)() },
				func() []scrape.TargetInfo { reads++; return targets })
			require.Equal(t, st.reads, reads > 0)
			var want []Move
			if st.from != nil {
				for _, tg := range targets {
					from, to := st.from.Owners(nil, tg.Key, 1), st.to.Owners(nil, tg.Key, 1)
					if !slices.Equal(from, to) {
						want = append(want, Move{Time: st.view.Time(), Job: tg.Job, URL: tg.URL, From: from, To: to, Reason: st.reason})
					}
				}
				require.NotEmpty(t, want)
			}
			total += uint64(len(want))
			got, n := l.recent(len(want))
			require.Equal(t, total, n)
			slices.Reverse(got) // newest first
			if len(want) > 0 {
				require.Equal(t, want, got)
			}
		})
	}
}

// TestMoveJSON pins the moves log's JSON shape, which the API serves.
func TestMoveJSON(t *testing.T) {
	b, err := json.Marshal(Move{Time: time.Unix(0, 0).UTC(), Job: "j", URL: "u", From: []string{"a"}, To: []string{"b"}, Reason: "r"})
	require.NoError(t, err)
	require.JSONEq(t, `{"time":"1970-01-01T00:00:00Z","job":"j","url":"u","from":["a"],"to":["b"],"reason":"r"}`, string(b))
}

func TestDescribeChange(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after map[string]gossip.State
		want          string
	}{
		{"nothing", map[string]gossip.State{"a": gossip.StateActive}, map[string]gossip.State{"a": gossip.StateActive}, "membership changed"},
		{"join", nil, map[string]gossip.State{"a": gossip.StateJoining}, "a joined (joining)"},
		{"state", map[string]gossip.State{"a": gossip.StateActive}, map[string]gossip.State{"a": gossip.StateLeaving}, "a leaving"},
		{"left", map[string]gossip.State{"a": gossip.StateLeaving}, nil, "a left"},
		{"failed", map[string]gossip.State{"a": gossip.StateActive, "b": gossip.StateActive}, map[string]gossip.State{"b": gossip.StateActive}, "a failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, describeChange(tc.before, tc.after))
		})
	}
}

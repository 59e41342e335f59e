package agent

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/scrape"
)

// TestDiscoveryPlacement: a member blind to a target is skipped from the
// instant its discovery lacks the target until a lead after it sees it
// again; a new target nobody saw newTargetWindow ago goes to its ring owner,
// even when another member discovered it first; a member
// whose list is unknown counts as seeing everything.
func TestDiscoveryPlacement(t *testing.T) {
	const lead = 10 * time.Second
	r := ring.MustNew(ring.Names("a", "b", "c")...)
	key := uint64(12345)
	var rank []string
	rank = r.Owners(rank, key, 3)
	owner, second := rank[0], rank[1]

	with := scrape.Discovered{"job": scrape.NewJobTargets([]uint64{key, 7})}
	without := scrape.Discovered{"job": scrape.NewJobTargets([]uint64{7})}
	t0 := time.Unix(1_700_000_000, 0)
	lost, back := t0.Add(time.Minute), t0.Add(2*time.Minute)
	st := &discoveryState{
		sets: map[uint64]scrape.Discovered{with.Digest(): with, without.Digest(): without},
		history: map[string][]discVersion{
			owner:   {{from: t0, digest: with.Digest()}, {from: lost, digest: without.Digest()}, {from: back, digest: with.Digest()}},
			second:  {{from: t0, digest: with.Digest()}},
			rank[2]: {{from: t0, digest: with.Digest()}},
		},
	}
	whoOwns := func(at time.Time) []string {
		var out []string
		for _, m := range rank {
			if st.owns(gossip.NewPlacement(r, nil), 1, m, key, at, lead) {
				out = append(out, m)
			}
		}
		return out
	}
	require.Equal(t, []string{owner}, whoOwns(lost.Add(-time.Millisecond)), "before the owner loses it")
	require.Equal(t, []string{second}, whoOwns(lost), "the stand-in takes it over at once")
	require.Equal(t, []string{second}, whoOwns(back.Add(lead-time.Millisecond)), "until a lead after the owner sees it again")
	require.Equal(t, []string{owner}, whoOwns(back.Add(lead)))

	// Replication: the two best members that see it.
	require.True(t, st.owns(gossip.NewPlacement(r, nil), 2, rank[2], key, lost.Add(time.Second), lead))
	require.False(t, st.owns(gossip.NewPlacement(r, nil), 2, owner, key, lost.Add(time.Second), lead))

	// A new target: every member's discovery lacked it a lead ago, so
	// everyone is blind and the ring owner scrapes it at once.
	fresh := scrape.Discovered{"job": scrape.NewJobTargets([]uint64{key})}
	old := scrape.Discovered{"job": scrape.NewJobTargets(nil)}
	st = &discoveryState{
		sets: map[uint64]scrape.Discovered{fresh.Digest(): fresh, old.Digest(): old},
		history: map[string][]discVersion{
			owner:   {{from: t0, digest: old.Digest()}, {from: lost, digest: fresh.Digest()}},
			second:  {{from: t0, digest: old.Digest()}, {from: lost.Add(time.Second), digest: fresh.Digest()}},
			rank[2]: {{from: t0, digest: old.Digest()}},
		},
	}
	require.Equal(t, []string{owner}, whoOwns(lost.Add(2*time.Second)))

	// A new target another member discovered a moment before its owner: no
	// stand-in in between, the owner keeps it throughout (it would go
	// owner, stand-in, owner otherwise, two agents scraping at each change).
	st.history[second] = []discVersion{{from: t0, digest: old.Digest()}, {from: lost.Add(-time.Second), digest: fresh.Digest()}}
	window := newTargetWindow(lead)
	for _, at := range []time.Duration{0, lead - time.Second, lead, lead + time.Second/2, 2*lead - time.Second, 2 * lead, window, window + lead} {
		require.Equal(t, []string{owner}, whoOwns(lost.Add(at)), "owner discovered it 1s after the second, at %s", at)
	}
	// An owner that discovers it much later: the other member stands in once
	// the target is newTargetWindow old, until a lead after the owner sees
	// it.
	late := lost.Add(5 * lead)
	st.history[owner] = []discVersion{{from: t0, digest: old.Digest()}, {from: late, digest: fresh.Digest()}}
	seen := lost.Add(-time.Second) // by the second
	// While it is new only its owner may scrape it (which it does not: it
	// does not discover it).
	require.Equal(t, []string{owner}, whoOwns(seen.Add(lead)))
	require.Equal(t, []string{owner}, whoOwns(seen.Add(window-time.Millisecond)))
	require.Equal(t, []string{second}, whoOwns(seen.Add(window)))
	require.Equal(t, []string{second}, whoOwns(late.Add(lead-time.Millisecond)))
	require.Equal(t, []string{owner}, whoOwns(late.Add(lead)))

	// Unknown lists (digest not fetched) count as seeing it.
	st = &discoveryState{sets: map[uint64]scrape.Discovered{}, history: map[string][]discVersion{
		owner: {{from: t0, digest: 99}},
	}}
	require.Equal(t, []string{owner}, whoOwns(lost))
}

func TestDiscoveryReportRoundTrip(t *testing.T) {
	set := scrape.Discovered{"a": scrape.NewJobTargets([]uint64{3, 1, 2}), "b": scrape.NewJobTargets(nil)}
	r := DiscoveryReport{Targets: digestString(set.Digest()), Jobs: map[string]DiscoveryJob{
		"a": {Keys: []string{"1", "2", "3"}}, "b": {Keys: []string{}},
	}}
	got, digest, err := r.discovered()
	require.NoError(t, err)
	require.Equal(t, set.Digest(), digest)
	require.Equal(t, set.Digest(), got.Digest())
	require.True(t, got.Has(2))
	require.False(t, got.Has(4))

	r.Jobs["a"] = DiscoveryJob{Keys: []string{"1", "2"}}
	_, _, err = r.discovered()
	require.ErrorContains(t, err, "its keys give")
	r.Jobs["a"] = DiscoveryJob{Keys: []string{"xyz"}}
	_, _, err = r.discovered()
	require.ErrorContains(t, err, `job "a": key "xyz"`)
}

func TestJobDifferences(t *testing.T) {
	mine := scrape.Discovered{"a": scrape.NewJobTargets([]uint64{1, 2}), "b": scrape.NewJobTargets([]uint64{5})}
	theirs := scrape.Discovered{"a": scrape.NewJobTargets([]uint64{1, 2}), "b": scrape.NewJobTargets(nil), "c": scrape.NewJobTargets([]uint64{9})}
	require.Equal(t, []JobDifference{{Job: "b", Peer: 0, Local: 1}, {Job: "c", Peer: 1, Local: 0}}, jobDifferences(theirs, mine))
}

// A configuration that drops a job peers discover targets for is named
// with those peers; jobs only this agent knows, peers whose list is not
// known and peers that are not active are left out.
func TestDroppedJobs(t *testing.T) {
	both := scrape.Discovered{"api": scrape.NewJobTargets([]uint64{1, 2}), "db": scrape.NewJobTargets([]uint64{3})}
	apiOnly := scrape.Discovered{"api": scrape.NewJobTargets([]uint64{1, 2}), "db": scrape.NewJobTargets(nil)}
	d := &discovery{
		fetched: map[uint64]scrape.Discovered{apiOnly.Digest(): apiOnly},
		ownSets: map[uint64]scrape.Discovered{both.Digest(): both},
	}
	peer := func(name string, state gossip.State, digest uint64) gossip.Peer {
		return gossip.Peer{Name: name, State: state, Discovery: gossip.Discovery{Targets: digest}}
	}
	peers := []gossip.Peer{
		{Name: "self", Self: true, State: gossip.StateActive, Discovery: gossip.Discovery{Targets: both.Digest()}},
		peer("b", gossip.StateActive, both.Digest()),
		peer("c", gossip.StateActive, apiOnly.Digest()),
		peer("d", gossip.StateActive, 42), // not fetched yet
		peer("e", gossip.StateLeaving, both.Digest()),
	}
	job := func(name string) *config.ScrapeConfig { return &config.ScrapeConfig{JobName: name} }
	require.Equal(t, map[string][]string{"api": {"b", "c"}, "db": {"b"}}, d.droppedJobs(peers, nil))
	require.Equal(t, map[string][]string{"db": {"b"}}, d.droppedJobs(peers, []*config.ScrapeConfig{job("api"), job("new")}))
	require.Empty(t, d.droppedJobs(peers, []*config.ScrapeConfig{job("api"), job("db")}))
}

package scrape

import (
	"testing"

	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/stretchr/testify/require"
)

// TestFilterKeyCache: passes after an ownership change reuse the keys of
// the snapshot; a new config computes them again (another metrics path is
// another URL, so another key), as a new snapshot does.
func TestFilterKeyCache(t *testing.T) {
	owner := &fakeOwner{ready: true, owns: ownAll}
	f := newTestFilter(t, FilterOptions{Owner: owner}, loadConfig(t, twoJobs))
	g := group("g", "h1:80", "h2:80")
	f.snapshot = map[string][]*targetgroup.Group{"a": {g}, "b": {g}}

	_, ok := f.pass()
	require.True(t, ok)
	before := f.Discovered()
	require.Len(t, f.keys, 2, "one entry per job and group")

	// The cache answers the next passes: ownership changes, keys do not.
	owner.set(true, ownNone)
	out, _ := f.pass()
	require.Empty(t, out["a"][0].Targets)
	owner.set(true, ownAll)
	out, _ = f.pass()
	require.Len(t, out["a"][0].Targets, 2)
	require.Equal(t, before, f.Discovered())
	require.Equal(t, string(formatKey(before["a"].Keys[0])), minKey(out["a"][0]), "owned targets carry the cached key")

	// A new config drops the cache.
	require.NoError(t, f.ApplyConfig(loadConfig(t, "scrape_configs: [{job_name: a, metrics_path: /other}]")))
	require.Nil(t, f.keys)
	_, _ = f.pass()
	require.NotEqual(t, before["a"].Keys, f.Discovered()["a"].Keys)
	require.Equal(t, NewJobTargets([]uint64{newKeyer().sum("a", "http://h1:80/other"), newKeyer().sum("a", "http://h2:80/other")}).Keys,
		f.Discovered()["a"].Keys)
}

// minKey is the smallest KeyLabel of a group's targets.
func minKey(g *targetgroup.Group) string {
	out := ""
	for _, t := range g.Targets {
		if k := string(t[KeyLabel]); out == "" || k < out {
			out = k
		}
	}
	return out
}

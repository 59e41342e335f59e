package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

func TestRebuildCacheSchedule(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	spans := func(order ...string) []span {
		var out []span
		for _, n := range order {
			out = append(out, span{member: ring.Member{Name: n, Weight: 1}})
		}
		return out
	}
	var c rebuildCache
	first, err := c.schedule(spans("a", "b", "c"), nil, now)
	require.NoError(t, err)
	again, err := c.schedule(spans("c", "a", "b"), nil, now.Add(time.Second))
	require.NoError(t, err)
	require.Same(t, first, again, "same spans in another order: the same schedule")

	changed, err := c.schedule(spans("a", "b"), nil, now.Add(2*time.Second))
	require.NoError(t, err)
	require.NotSame(t, first, changed)
	require.Equal(t, 2, changed.Final().Len())

	// A join announced at now+5s is kept for scheduleHistory after it;
	// once it is older, newSchedule folds it into "since ever" and so must
	// the cache.
	joined := append(spans("a", "b"), span{member: ring.Member{Name: "c", Weight: 1}, from: now.Add(5 * time.Second)})
	withJoin, err := c.schedule(joined, nil, now)
	require.NoError(t, err)
	require.Len(t, withJoin.Changes(), 1)
	later, err := c.schedule(joined, nil, now.Add(time.Minute))
	require.NoError(t, err)
	require.Same(t, withJoin, later, "the instant is still within the history")
	folded, err := c.schedule(joined, nil, now.Add(5*time.Second+scheduleHistory+time.Second))
	require.NoError(t, err)
	require.Empty(t, folded.Changes(), "the instant crossed the horizon")
	fresh, err := newSchedule(joined, now.Add(5*time.Second+scheduleHistory+time.Second))
	require.NoError(t, err)
	require.Equal(t, fresh.Digest(), folded.Digest())
}

func TestRebuildCacheMeta(t *testing.T) {
	n, err := New(func() Config { c := DefaultConfig(); c.Name = "self"; c.BindAddr = "127.0.0.1:0"; return c }(), nil, nil)
	require.NoError(t, err)
	raw := func(digest uint64) []byte {
		b, err := encodeMeta(Meta{State: StateActive, HTTPAddr: "127.0.0.1:9090", Weight: 1, Digest: digest})
		require.NoError(t, err)
		return b
	}
	var c rebuildCache
	m, err := c.meta(n, "peer", raw(1))
	require.NoError(t, err)
	require.Equal(t, uint64(1), m.Digest)
	m, err = c.meta(n, "peer", raw(1))
	require.NoError(t, err)
	require.Equal(t, uint64(1), m.Digest)
	m, err = c.meta(n, "peer", raw(2))
	require.NoError(t, err)
	require.Equal(t, uint64(2), m.Digest, "new bytes are decoded")

	_, err = c.meta(n, "peer", []byte(`{"v":1,"s":"active","w":1000}`))
	require.Error(t, err, "refused metadata is not served from the cache")
	require.NotContains(t, c.metas, "peer")

	c.forget([]member{{name: "other"}})
	require.Empty(t, c.metas)
}

// BenchmarkRebuild is what one member's metadata update costs a node: a
// rebuild over size members, once with the cache (only the updated member
// is decoded, the schedule is reused) and once without (every member's
// metadata decoded and the schedule built again, as before the cache).
//
// Run with: go test -run '^$' -bench Rebuild ./gossip/
func BenchmarkRebuild(b *testing.B) {
	for _, size := range []int{10, 100, 1000} {
		n, err := New(func() Config { c := DefaultConfig(); c.Name = scaleName(0); c.BindAddr = "127.0.0.1:0"; return c }(), nil, nil)
		require.NoError(b, err)
		n.state = StateActive
		started := time.Now().Add(-time.Hour)
		metaOf := func(i int, digest uint64) []byte {
			raw, err := encodeMeta(Meta{State: StateActive, HTTPAddr: fmt.Sprintf("127.0.%d.%d:9090", i/250, 1+i%250), Version: "0.14.2",
				Digest: digest, Started: started, Weight: 1, Discovery: Discovery{Config: 0x1234567890abcdef, Targets: 0xfedcba0987654321, Changed: started}})
			require.NoError(b, err)
			return raw
		}
		for i := range size {
			n.members[scaleName(i)] = member{name: scaleName(i), addr: fmt.Sprintf("127.0.0.1:%d", 7000+i), meta: metaOf(i, 1)}
		}
		for _, cached := range []bool{true, false} {
			b.Run(fmt.Sprintf("members=%d/cache=%v", size, cached), func(b *testing.B) {
				digest := uint64(2)
				for b.Loop() {
					// One member advertises a new digest.
					digest++
					n.membersMu.Lock()
					m := n.members[scaleName(1)]
					m.meta = metaOf(1, digest)
					n.members[m.name] = m
					n.membersMu.Unlock()
					if !cached {
						n.cache = rebuildCache{}
					}
					n.rebuild()
				}
			})
		}
	}
}

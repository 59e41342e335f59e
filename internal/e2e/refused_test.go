package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// refusedIntervals is how long the misconfigured agents are watched, in
// scrape intervals: far beyond their bootstrap timeout.
const refusedIntervals = 30

// TestMisconfiguredPeersScrapeNothing starts two agents that reach a
// converged cluster of two but are refused by it, one with another
// --cluster.name and one with a gossip key the cluster lacks, both with
// --cluster.bootstrap. For thirty intervals, read back from the receiver,
// every healthy target is written only by its owner in the cluster, once
// per interval (no duplicate, no gap), the refused agents scrape nothing,
// and their /-/ready says why.
func TestMisconfiguredPeersScrapeNothing(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 2, "fleet", nil)
	key := filepath.Join(t.TempDir(), "gossip.key")
	require.NoError(t, os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	var join []string
	for _, a := range c.agents {
		join = append(join, a.GossipAddr)
	}
	bad := map[string]string{
		"other-name": `cluster name "shoal" differs from ours "shoal-typo" (--cluster.name)`,
		"keyed":      "it gossips without a key and this agent has one (--cluster.secret-key-file)",
	}
	extra := map[string][]string{
		"other-name": {"--cluster.name=shoal-typo"},
		"keyed":      {"--cluster.secret-key-file=" + key},
	}
	var agents []*Agent
	for _, name := range []string{"other-name", "keyed"} {
		a, err := NewAgent(c.env.Group, AgentOptions{Name: name, Config: c.env.PromConfig(), Join: join, Bootstrap: true,
			ExtraArgs: extra[name]})
		require.NoError(t, err)
		require.NoError(t, a.Launch())
		agents = append(agents, a)
	}
	ctx := t.Context()
	for _, a := range agents {
		require.NoError(t, Poll(ctx, ReadyTimeout, pollInterval, func(ctx context.Context) error {
			if err := a.Ready(ctx); err == nil || !strings.Contains(err.Error(), "503") {
				return fmt.Errorf("%s: want 503, got %w", a.Name, err)
			}
			return nil
		}))
	}
	w := Window{Start: time.Now().Add(2 * BootstrapTimeout), Interval: c.iv}
	w.End = w.Start.Add(refusedIntervals * c.iv)
	for time.Now().Before(w.End) {
		for _, a := range agents {
			err := a.Ready(ctx)
			require.Error(t, err, "%s is ready", a.Name)
			if time.Now().After(w.Start) {
				require.ErrorContains(t, err, "refused by ")
				require.ErrorContains(t, err, bad[a.Name])
			}
			ts, err := a.ActiveTargets(ctx)
			require.NoError(t, err)
			require.Empty(t, ts, "%s scrapes", a.Name)
		}
		time.Sleep(c.iv / 2)
	}
	after, err := Converged(ctx, c.agents, c.healthy)
	require.NoError(t, err, "the cluster changed")
	require.Equal(t, c.own, after, "ownership changed")
	_, err = WaitIngested(ctx, c.env.Receiver, counterSelector, c.healthy, w.End)
	require.NoError(t, err)
	counter, err := Collect(ctx, c.env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	for _, st := range AnalyzeAll(counter, c.healthy, w, true) {
		require.Equal(t, c.own[st.Instance], st.Agents, "%s: samples written by %v", st.Instance, st.Agents)
		require.Zero(t, st.Duplicates(), "%s: duplicate scrapes: %+v", st.Instance, st)
		require.Zero(t, st.Gaps, "%s: gaps: %+v", st.Instance, st)
	}
	for _, a := range agents {
		err := a.Ready(ctx)
		t.Logf("%s, over %d intervals of %v: 0 targets scraped; %v", a.Name, refusedIntervals, c.iv, err)
	}
}

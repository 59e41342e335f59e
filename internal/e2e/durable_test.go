package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// receiverOutage stops the receiver for outage under c, calls during a
// third of the way in, starts the receiver again and returns, once every
// healthy target's samples up to three intervals after the outage arrived,
// the counter analysis of the window from three intervals before the
// outage to three after. It logs the figures as an E2E line named test.
func receiverOutage(t *testing.T, c testCluster, test string, during func()) ([]Stats, Window) {
	t.Helper()
	sleepUntil(c.at.Add(3 * c.iv))
	down := time.Now()
	require.NoError(t, c.env.StopReceiver())
	if during != nil {
		sleepUntil(down.Add(outage / 3))
		during()
	}
	sleepUntil(down.Add(outage))
	require.NoError(t, c.env.StartReceiver())
	up := time.Now()
	catchUp, err := WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, up)
	require.NoError(t, err)

	w := Window{Start: down.Add(-3 * c.iv), End: up.Add(3 * c.iv), Interval: c.iv}
	sleepUntil(w.End)
	_, err = WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, w.End)
	require.NoError(t, err)
	counter, err := Collect(t.Context(), c.env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, c.healthy, w, true)
	t.Logf("E2E test=%s agents=%d interval_s=%g outage_s=%.1f catch_up_s=%.1f window_s=%.1f expected_per_target=%d %s",
		test, len(c.agents), c.iv.Seconds(), up.Sub(down).Seconds(), catchUp.Seconds(), w.End.Sub(w.Start).Seconds(), w.Expected(), Summarize(stats))
	return stats, w
}

// TestRestartsDuringReceiverOutage stops the receiver for 30 s and, inside
// the outage, restarts both agents one after the other (SIGTERM, the same
// storage path, --cluster.restart-grace so their targets stay put). What
// they scraped before the restarts is on disk and not yet sent; after the
// receiver is back every sample of the window arrives, in order (the
// receiver refuses out-of-order samples), with no duplicate.
func TestRestartsDuringReceiverOutage(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 2, "rr", func(_ *Env, o *AgentOptions) {
		o.ExtraArgs = append(o.ExtraArgs, "--cluster.restart-grace=1m")
	})
	stats, _ := receiverOutage(t, c, "restarts_during_receiver_outage", func() {
		for _, a := range c.agents {
			require.NoError(t, a.Restart(t.Context()))
			require.NoError(t, a.WaitReady(t.Context()))
		}
	})
	for _, st := range stats {
		require.Zero(t, st.Missing, "%s: counter values lost: %+v", st.Instance, st)
		require.Zero(t, st.Duplicates(), "%s: duplicates: %+v", st.Instance, st)
		// The restart itself skips at most one slot per target: the scrape
		// due while the agent is down.
		require.LessOrEqual(t, st.Gaps, 2, "%s: scrapes missing: %+v", st.Instance, st)
	}
}

// TestKillDuringReceiverOutage kills one of two agents (SIGKILL: no
// handoff, no flush, no final savepoint) inside a receiver outage and
// starts it again on the same storage path. Its peer declares it dead and
// takes its targets for a while; when the receiver is back, both queues go
// out. The killed agent's backlog is resent from its savepoint: no target
// loses more than one counter value.
func TestKillDuringReceiverOutage(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 2, "rk", nil)
	stats, _ := receiverOutage(t, c, "kill_during_receiver_outage", func() {
		require.NoError(t, c.agents[0].Kill())
		require.NoError(t, c.agents[0].Start(t.Context()))
		require.NoError(t, c.agents[0].WaitReady(t.Context()))
	})
	for _, st := range stats {
		// At most the scrape that was being written when the kill came.
		require.LessOrEqual(t, st.Missing, 1, "%s: counter values lost: %+v", st.Instance, st)
	}
}

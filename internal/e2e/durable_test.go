package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// receiverOutage stops the receiver for d under c, calls during a
// third of the way in, starts the receiver again and returns, once every
// healthy target's samples up to three intervals after the outage arrived,
// the counter analysis of the window from three intervals before the
// outage to three after. It logs the figures as an E2E line named test.
func receiverOutage(t *testing.T, c testCluster, test string, d time.Duration, during func()) ([]Stats, Window) {
	t.Helper()
	sleepUntil(c.at.Add(3 * c.iv))
	down := time.Now()
	require.NoError(t, c.env.StopReceiver())
	if during != nil {
		sleepUntil(down.Add(d / 3))
		during()
	}
	sleepUntil(down.Add(d))
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
	stats, _ := receiverOutage(t, c, "restarts_during_receiver_outage", outage, func() {
		for i, a := range c.agents {
			peer := c.agents[(i+1)%len(c.agents)]
			before := metricValue(t, peer, movedIn)
			require.NoError(t, a.Restart(t.Context()))
			require.NoError(t, a.WaitReady(t.Context()))
			// The grace holds the restarting agent's targets: its peer
			// never takes them, not while it is down and not while its
			// new process joins.
			time.Sleep(2 * c.iv)
			require.Equal(t, before, metricValue(t, peer, movedIn),
				"%s took targets while %s restarted inside its restart grace", peer.Name, a.Name)
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

// movedIn counts the targets an agent took over from a peer.
const movedIn = `shoal_targets_moved_total{direction="in"}`

// TestKillDuringReceiverOutage kills one of two agents (SIGKILL: no
// handoff, no flush, no final savepoint) inside a receiver outage and
// starts it again on the same storage path. Its peer declares it dead and
// takes its targets for a while; when the receiver is back, both queues go
// out. The killed agent's backlog is resent from its savepoint: no target
// loses more than one counter value.
func TestKillDuringReceiverOutage(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 2, "rk", nil)
	stats, _ := receiverOutage(t, c, "kill_during_receiver_outage", outage, func() {
		require.NoError(t, c.agents[0].Kill())
		require.NoError(t, c.agents[0].Start(t.Context()))
		require.NoError(t, c.agents[0].WaitReady(t.Context()))
	})
	for _, st := range stats {
		// At most the scrape that was being written when the kill came.
		require.LessOrEqual(t, st.Missing, 1, "%s: counter values lost: %+v", st.Instance, st)
	}
}

// TestHandoffAcrossReceiverRecovery stops one of two agents (SIGTERM, no
// restart grace: its targets are handed to its peer) late in a receiver
// outage, brings the receiver back while it is down, and starts it again
// ten seconds later on the same storage. Its backlog, the moved targets'
// older samples, goes out only then; its peer is ready at once with their
// newer ones. The peer's queue holds them until the stopped agent has
// delivered its own (--storage.remote.handoff-wait), so the strict receiver
// refuses nothing and no counter value is lost.
//
// SHOAL_E2E_BASELINE=1 runs it once more with the wait off, to measure what
// it saves: the receiver then refuses the older samples as out of order.
func TestHandoffAcrossReceiverRecovery(t *testing.T) {
	t.Parallel()
	variants := []string{"30s"}
	if os.Getenv("SHOAL_E2E_BASELINE") != "" {
		variants = append(variants, "0s")
	}
	for _, wait := range variants {
		t.Run("handoff-wait="+wait, func(t *testing.T) {
			c := startConverged(t, 2, "hr", func(_ *Env, o *AgentOptions) {
				// One series per target, as in production: the receiver
				// orders the two agents' samples of it.
				o.NoAgentLabel = true
				o.ExtraArgs = append(o.ExtraArgs, "--storage.remote.handoff-wait="+wait)
			})
			a := c.agents[0]
			sleepUntil(c.at.Add(3 * c.iv))
			down := time.Now()
			require.NoError(t, c.env.StopReceiver())
			sleepUntil(down.Add(20 * time.Second))
			require.NoError(t, a.Stop())
			require.NoError(t, c.env.StartReceiver())
			up := time.Now()
			time.Sleep(10 * time.Second)
			require.NoError(t, a.Start(t.Context()))
			require.NoError(t, a.WaitReady(t.Context()))
			back := time.Now()

			w := Window{Start: down.Add(-3 * c.iv), End: back.Add(3 * c.iv), Interval: c.iv}
			sleepUntil(w.End)
			_, err := WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, w.End)
			require.NoError(t, err)
			counter, err := Collect(t.Context(), c.env.Receiver, counterSelector, w.Start, w.End)
			require.NoError(t, err)
			stats := AnalyzeAll(counter, c.healthy, w, true)
			sum := Summarize(stats)
			t.Logf("E2E test=handoff_across_receiver_recovery handoff_wait=%s agents=%d interval_s=%g outage_s=%.1f stopped_s=%.1f window_s=%.1f expected_per_target=%d %s",
				wait, len(c.agents), c.iv.Seconds(), up.Sub(down).Seconds(), back.Sub(up).Seconds(), w.End.Sub(w.Start).Seconds(), w.Expected(), sum)
			if wait == "0s" {
				return // the baseline: printed only
			}
			for _, st := range stats {
				require.Zero(t, st.Missing, "%s: counter values lost: %+v", st.Instance, st)
			}
		})
	}
}

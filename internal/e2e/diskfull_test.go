package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestDiskFullDuringReceiverOutage puts an agent's storage on a small tmpfs,
// stops the receiver and fills the disk: /-/ready turns 503 and says why,
// and the scrapes that cannot be stored are counted. Then the tmpfs is
// enlarged: within 60 s, without a restart, the agent is ready again and
// writes; once the receiver is back, every sample scraped after the
// recovery arrives, and what was queued before the disk filled too.
func TestDiskFullDuringReceiverOutage(t *testing.T) {
	t.Parallel()
	SkipUnlessIntegration(t)
	if os.Geteuid() != 0 {
		if os.Getenv(testenv.EnvRequireIntegration) != "" {
			t.Fatal("mounting a tmpfs needs root")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	env := startEnv(t, EnvOptions{Targets: 30, Unhealthy: 5})
	healthy := env.Instances(true)
	a, err := NewAgent(env.Group, AgentOptions{Name: "df-0", Config: env.PromConfig(), Bootstrap: true})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(a.DataDir, 0o750))
	mount(t, a.DataDir, "size=1m")
	t.Cleanup(func() { _ = exec.Command("umount", "-l", a.DataDir).Run() })
	require.NoError(t, a.Start(t.Context()))
	_, err = WaitConverged(t.Context(), []*Agent{a}, healthy)
	require.NoError(t, err)
	iv := env.PromConfig().Interval()

	time.Sleep(3 * iv)
	down := time.Now()
	require.NoError(t, env.StopReceiver())
	// Leave a few KiB: the queue fills within seconds.
	fill(t, a.DataDir, 8<<10)
	var reason string
	require.NoError(t, Poll(t.Context(), time.Minute, 200*time.Millisecond, func(ctx context.Context) error {
		err := a.Ready(ctx)
		if err == nil {
			return fmt.Errorf("still ready")
		}
		reason = err.Error()
		return nil
	}), "not ready once the disk is full")
	full := time.Now()
	require.Contains(t, reason, "503")
	require.Contains(t, reason, "cannot write")
	t.Logf("not ready %.1fs after the disk was filled: %s", time.Since(down).Seconds(), reason)
	time.Sleep(3 * iv) // scrapes are dropped meanwhile

	mount(t, a.DataDir, "remount,size=16m")
	enlarged := time.Now()
	require.NoError(t, Poll(t.Context(), time.Minute, 200*time.Millisecond, a.Ready), "ready again within 60 s of the space returning")
	recovered := time.Now()
	dropped := metricValue(t, a, `shoal_storage_samples_dropped_total{reason="disk_full"`)
	require.Positive(t, dropped, "the scrapes that could not be stored are counted")

	time.Sleep(3 * iv)
	require.NoError(t, env.StartReceiver())
	w := Window{Start: recovered.Add(iv), End: time.Now().Add(3 * iv), Interval: iv}
	sleepUntil(w.End)
	catchUp, err := WaitIngested(t.Context(), env.Receiver, counterSelector, healthy, w.End)
	require.NoError(t, err)
	counter, err := Collect(t.Context(), env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, healthy, w, true)
	before, err := Collect(t.Context(), env.Receiver, counterSelector, down.Add(-3*iv), down)
	require.NoError(t, err)
	t.Logf("E2E test=disk_full_during_receiver_outage full_after_s=%.1f ready_after_space_s=%.1f dropped_samples=%g catch_up_s=%.1f after_recovery: %s",
		full.Sub(down).Seconds(), recovered.Sub(enlarged).Seconds(), dropped, catchUp.Seconds(), Summarize(stats))
	for _, st := range stats {
		require.Zero(t, st.Missing, "%s: samples scraped after the recovery lost: %+v", st.Instance, st)
		require.Zero(t, st.Gaps, "%s: %+v", st.Instance, st)
	}
	for _, inst := range healthy {
		require.NotEmpty(t, before[inst], "%s: what was queued before the outage arrived", inst)
	}
}

func mount(t *testing.T, dir, opts string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount -o %s: %s", opts, out)
}

// fill writes a file into dir until only about free bytes are left.
func fill(t *testing.T, dir string, free int64) {
	t.Helper()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	avail := int64(st.Bavail) * st.Bsize
	if avail <= free {
		return
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "filler"), bytes.Repeat([]byte{0}, int(avail-free)), 0o600))
}

// metricValue sums the samples of a's /metrics lines starting with prefix.
func metricValue(t *testing.T, a *Agent, prefix string) float64 {
	t.Helper()
	body, _, err := a.get(t.Context(), "/metrics")
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var v float64
		f := strings.Fields(line)
		_, err := fmt.Sscan(f[len(f)-1], &v)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memoryCgroups is where a cgroup v1 memory controller is mounted; the
// poison scenario puts each agent in a cgroup of its own there (as root).
const memoryCgroups = "/sys/fs/cgroup/memory"

// Poison scenario settings. An agent scraping the 20 farm targets needs well
// under 200 MiB; scraping the poison body (98 MB, 1.3 M series) without
// limits needs about 1.8 GiB (see README, Scrape limits).
const (
	poisonMemoryLimit = 600 << 20
	poisonSeries      = 1_300_000
)

// TestPoisonTargetFleet: four agents, each in a memory cgroup of 600 MiB,
// scrape 20 farm targets; then a target serving 98 MB (1.3 M series) is
// added in a job that lifts the default limits (body_size_limit: 0,
// sample_limit: 0). An agent OOM-killed while it advertises the scrape in
// flight makes its peers hold the target at once. Checked: at most one agent
// dies, the survivors hold the target (and only it) and scrape every farm
// target, and the farm targets the survivors scraped from the start have no
// gap at any time.
func TestPoisonTargetFleet(t *testing.T) {
	SkipUnlessIntegration(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for memory cgroups")
	}
	if _, err := os.Stat(filepath.Join(memoryCgroups, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller at %s: %v", memoryCgroups, err)
	}
	t.Parallel()
	ctx := t.Context()
	env := startEnv(t, EnvOptions{Targets: 20})
	healthy := env.Instances(true)
	iv := env.PromConfig().Interval()
	poison := startPoison(t)
	sdFile := filepath.Join(t.TempDir(), "poison.json")
	require.NoError(t, os.WriteFile(sdFile, []byte("[]"), 0o644))
	bin, err := Binary()
	require.NoError(t, err)

	agents, err := env.StartCluster(ctx, 4, "poison", func(_ int, o *AgentOptions) {
		o.Bin = memoryLimited(t, o.Name, bin, poisonMemoryLimit)
		o.ExtraArgs = append(o.ExtraArgs, "--cluster.quarantine-window=2m", "--cluster.quarantine-backoff=3m")
		base := o.Config
		base.ExternalLabels = map[string]string{AgentLabel: o.Name}
		o.Config.Raw = strings.Replace(base.Render(), "remote_write:", fmt.Sprintf(`  - job_name: poison
    body_size_limit: 0
    sample_limit: 0
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
remote_write:`, sdFile), 1)
	})
	require.NoError(t, err)
	own0, _, err := WaitSettled(ctx, agents, healthy)
	require.NoError(t, err)

	// The poison target appears.
	added := time.Now()
	// Written aside and renamed: file SD would read a truncated file as
	// empty first.
	tmp := sdFile + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(fmt.Sprintf(`[{"targets": [%q]}]`, poison)), 0o644))
	require.NoError(t, os.Rename(tmp, sdFile))
	var holders []*Agent
	// declared are the agents the holds name as having died: memberlist
	// declared them dead, and an agent that stalled scraping the body (its
	// Go heap at GOMEMLIMIT) may come back instead of being killed.
	var declared []string
	require.NoError(t, Poll(ctx, 5*time.Minute, 500*time.Millisecond, func(ctx context.Context) error {
		holders = holders[:0]
		for _, a := range agents {
			if exited(a) {
				continue
			}
			q, err := a.Quarantine(ctx)
			if err != nil {
				return err
			}
			if len(q.Targets) != 1 || !strings.Contains(q.Targets[0].URL, "//"+poison+"/") {
				return fmt.Errorf("%s holds %+v", a.Name, q.Targets)
			}
			holders = append(holders, a)
			for _, o := range q.Targets[0].FailedOwners {
				if !slices.Contains(declared, o) {
					declared = append(declared, o)
				}
			}
		}
		return nil
	}))
	held := time.Now()
	var dead []string
	for _, a := range agents {
		if exited(a) {
			dead = append(dead, a.Name)
			require.NoError(t, a.Kill()) // reaps it
			st := a.LastExit()
			require.NotNil(t, st)
			ws, ok := st.Sys().(syscall.WaitStatus)
			require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s exited with %v, want the OOM killer's SIGKILL", a.Name, st)
		}
	}
	require.LessOrEqual(t, len(dead), 1, "agents dead: %v", dead)
	require.NotEmpty(t, declared, "no agent was declared dead: the hold has no cause")
	if len(dead) == 0 {
		// Held with no agent lost: the one that scraped it stalled past
		// failure detection and came back.
		t.Logf("no agent died: %v declared dead while scraping the body, then back", declared)
	}

	// Nobody else dies, the survivors converge on every farm target and
	// hold the poison one.
	want := append(slices.Clone(healthy), poison)
	slices.Sort(want)
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		_, err := ConvergedHolding(ctx, holders, want, []string{poison})
		return err
	}))
	end := time.Now().Add(10 * iv)
	sleepUntil(end)
	for _, a := range holders {
		require.False(t, exited(a), "%s died after the hold", a.Name)
	}
	// Still held and consistent (load-aware placement may have rebalanced
	// the survivors' farm targets since: a planned handoff).
	require.NoError(t, Poll(ctx, ConvergeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
		_, err := ConvergedHolding(ctx, holders, want, []string{poison})
		return err
	}))

	// The farm targets the survivors scraped from the start never missed a
	// slot; the dead agents' ones moved after failure detection.
	_, err = WaitIngested(ctx, env.Receiver, counterSelector, healthy, end)
	require.NoError(t, err)
	w := Window{Start: added, End: end, Interval: iv}
	all, err := Collect(ctx, env.Receiver, counterSelector, added.Add(-3*iv), end)
	require.NoError(t, err)
	var kept, moved []string
	for _, inst := range healthy {
		if slices.ContainsFunc(own0[inst], func(n string) bool { return slices.Contains(dead, n) }) {
			moved = append(moved, inst)
		} else {
			kept = append(kept, inst)
		}
	}
	keptStats := AnalyzeAll(all, kept, w, true)
	for _, st := range keptStats {
		require.Zero(t, st.Gaps, "%s (never on a dead agent) has gaps: %+v", st.Instance, st)
	}
	movedSum := Summarize(AnalyzeAll(all, moved, w, true))
	ps, err := Collect(ctx, env.Receiver, `up{job="poison"}`, held.Add(iv), end)
	require.NoError(t, err)
	require.Empty(t, ps[poison], "the held poison target was scraped")
	t.Logf("E2E test=poison_fleet agents=4 memory_limit_mib=%d poison_series=%d agents_dead=%d dead=%q declared_dead=%q held_after_s=%.1f farm_targets=%d kept_targets=%d kept_gaps=0 moved_targets=%d moved_max_gap_s=%.3f moved_gaps=%d",
		poisonMemoryLimit>>20, poisonSeries, len(dead), strings.Join(dead, ","), strings.Join(declared, ","), held.Sub(added).Seconds(), len(healthy), len(kept), len(moved), movedSum.MaxGap.Seconds(), movedSum.Gaps)
}

// exited reports whether the agent's process has exited on its own (or
// was killed) since it was started.
func exited(a *Agent) bool {
	ch := a.Exited()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// startPoison serves a 98 MB exposition of poisonSeries series on loopback
// and returns its host:port.
func startPoison(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.Grow(poisonSeries * 76)
	for i := range poisonSeries {
		b.WriteString(`poison_series{series="`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`",pad="abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl"} 1` + "\n")
	}
	body := []byte(b.String())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = rw.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	t.Logf("poison target at %s: %d bytes, %d series", ln.Addr(), len(body), poisonSeries)
	return ln.Addr().String()
}

// memoryLimited returns a wrapper of bin that runs it in a memory cgroup
// of its own limited to limit bytes: past it, the kernel's OOM killer
// sends SIGKILL, as a container runtime's would.
func memoryLimited(t *testing.T, name, bin string, limit int64) string {
	t.Helper()
	cg := filepath.Join(memoryCgroups, fmt.Sprintf("shoal-e2e-%d-%s", os.Getpid(), name))
	require.NoError(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() {
		// The agents may still run (the group kills them later): move them
		// out first.
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(memoryCgroups, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		for range 50 {
			if err := os.Remove(cg); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644))
	_ = os.WriteFile(filepath.Join(cg, "memory.swappiness"), []byte("0"), 0o644)
	wrapper := filepath.Join(t.TempDir(), "shoal-"+name)
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s/cgroup.procs || exit 97\nexec %s \"$@\"\n", cg, bin)
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	return wrapper
}

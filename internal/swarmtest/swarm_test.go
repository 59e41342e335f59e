//go:build linux

package swarmtest

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// farmTargets is FARM_TARGETS, the stack's default.
	farmTargets = 30
	// farmBasePort is the farm's --base-port in the stack file.
	farmBasePort = 10000
	// replicas is the stack file's replica count; scaleOut the count the
	// test scales to and back from.
	replicas, scaleOut = 3, 5
	// convergeTimeout bounds how long the fleet may take to settle after a
	// change; Swarm's own command has returned by then.
	convergeTimeout = 3 * time.Minute
	// deployTimeout covers the first deploy: Consul starting, the farm
	// registering (it exits and is restarted while Consul is not up) and
	// the agents forming a cluster.
	deployTimeout = 4 * time.Minute
	// agentScrape is the receiver's scrape interval of the agents
	// (deploy/swarm/prometheus.yml, job shoal).
	agentScrape = 2 * time.Second
)

// swarmFlag turns TestSwarm on: it takes about six minutes, too long for
// `make test`, which runs every package; `make swarm` sets it.
var swarmFlag = flag.Bool("swarm", false, "run TestSwarm: deploy deploy/swarm/stack.yml on Docker Swarm, scale and roll it (make swarm, about 6 minutes)")

// TestSwarm deploys deploy/swarm/stack.yml unchanged on a Docker Swarm
// manager, with images built locally, and changes the shoal service the
// ways an operator does: scale 3 -> 5, scale 5 -> 3, a rolling
// `docker service update --force`. Every phase's window, back to back from
// a steady one after the deploy to the end, is judged at the receiver: no
// target may have a gap over one interval, and the receiver (strict, no
// out-of-order window) may refuse no sample as out of order and answer no
// remote write with 400. It prints a table. The stack, its volumes and
// networks, the images and, if the test initialised it, the swarm are
// removed at the end.
func TestSwarm(t *testing.T) {
	if !*swarmFlag || testing.Short() {
		t.Skip("swarmtest: runs only with -swarm (make swarm), and not in -short mode")
	}
	testenv.SkipWithout(t, testenv.ConsulBinary, testenv.PrometheusBinary)
	c := newCLI(t)
	c.requireSwarm(t) // its cleanup runs last
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	ctx := t.Context()

	interval := scrapeInterval(t, filepath.Join(root, "deploy/swarm/shoal.yml"))
	version := "swarm-test-" + gitDescribe(root)
	t.Cleanup(c.removeImages)
	t0 := time.Now()
	env, err := c.buildImages(ctx, root, version)
	require.NoError(t, err)
	t.Logf("images built locally in %v: %s", time.Since(t0).Round(time.Second), strings.Join(env, " "))

	key, err := c.gossipKey()
	require.NoError(t, err)
	port, err := testenv.Port()
	require.NoError(t, err)
	st := &stack{c: c, name: c.id, file: filepath.Join(root, "deploy/swarm/stack.yml"),
		env: append(env, "RECEIVER_PORT="+strconv.Itoa(port), "SHOAL_GOSSIP_KEY_FILE="+key, fmt.Sprintf("FARM_TARGETS=%d", farmTargets))}
	t.Cleanup(func() { st.remove(t) })

	rcv, err := newReceiver(fmt.Sprintf("http://127.0.0.1:%d", port))
	require.NoError(t, err)
	defer rcv.close()
	var instances []string
	for i := range farmTargets {
		instances = append(instances, fmt.Sprintf("farm:%d", farmBasePort+i))
	}

	// The deploy, then a steady window on the stack's replica count.
	t0 = time.Now()
	require.NoError(t, st.deploy(ctx))
	require.NoError(t, rcv.waitConverged(ctx, deployTimeout, replicas, farmTargets, time.Time{}), "the stack did not converge")
	deployed := time.Since(t0)
	_, err = e2e.WaitIngested(ctx, rcv.Receiver, `farm_scrapes_total{job="farm"}`, instances, time.Now())
	require.NoError(t, err)
	t.Logf("deployed: %d agents active and agreeing, %d targets owned once, all at the receiver, %v after docker stack deploy",
		replicas, farmTargets, time.Since(t0).Round(time.Second))

	lagCtx, stopLag := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { rcv.pollLag(lagCtx, `farm_scrapes_total{job="farm"}`) })
	defer func() { stopLag(); wg.Wait() }()

	// settle is how long each phase goes on once the fleet has converged:
	// the moved targets' first scrapes by their new owners, delivered.
	settle := 4 * interval
	mark := time.Now()
	var phases []phase
	// run runs one phase: the docker command, and meanwhile a poll of the
	// fleet's convergence; then the settle time.
	run := func(name string, n int, replaced bool, args ...string) {
		p := phase{name: name, replicas: n, start: mark}
		t0 := time.Now()
		if len(args) > 0 {
			done := make(chan error, 1)
			go func() {
				var err error
				p.swarm, err = st.serviceCmd(ctx, args...)
				done <- err
			}()
			var after time.Time
			if replaced {
				after = t0
			}
			err := rcv.waitConverged(ctx, convergeTimeout, n, farmTargets, after)
			p.converge = time.Since(t0)
			require.NoError(t, <-done, "%s", name)
			require.NoError(t, err, "%s: the fleet did not converge", name)
			t.Logf("%s: the fleet converged after %v, swarm after %v", name, p.converge.Round(time.Second), p.swarm.Round(time.Second))
		} else {
			p.converge = deployed
		}
		time.Sleep(settle)
		p.end = time.Now()
		var err error
		p.rcvOOO, p.rcvRejected, err = rcv.counters(ctx)
		require.NoError(t, err)
		mark = p.end
		phases = append(phases, p)
	}
	svc := st.service("shoal")
	run("steady", replicas, false)
	run(fmt.Sprintf("scale %d->%d", replicas, scaleOut), scaleOut, false, "scale", "--detach=false", fmt.Sprintf("%s=%d", svc, scaleOut))
	run(fmt.Sprintf("scale %d->%d", scaleOut, replicas), replicas, false, "scale", "--detach=false", fmt.Sprintf("%s=%d", svc, replicas))
	run("update --force", replicas, true, "update", "--detach=false", "--force", svc)

	// Every sample up to the last phase's end has arrived once every
	// target has a later one (remote write sends each series in order).
	waited, err := e2e.WaitIngested(ctx, rcv.Receiver, `farm_scrapes_total{job="farm"}`, instances, mark)
	require.NoError(t, err)
	t.Logf("every target's samples up to the end at the receiver after %v more", waited.Round(time.Second))
	stopLag()
	wg.Wait()

	// The receiver's counters are read at each phase's end; a phase's
	// figures are the difference with the previous one's (the deploy's
	// before the steady window: the receiver has run since the deploy).
	prevOOO, prevRej := 0.0, 0.0
	for i := range phases {
		p := &phases[i]
		require.NoError(t, p.measure(ctx, rcv, instances, interval, agentScrape))
		p.rcvOOO, prevOOO = p.rcvOOO-prevOOO, p.rcvOOO
		p.rcvRejected, prevRej = p.rcvRejected-prevRej, p.rcvRejected
		t.Logf("phase=%q replicas=%d window_s=%.0f swarm_s=%.1f converge_s=%.1f targets=%d samples=%d max_gap_s=%.2f gap_targets=%d missing=%d duplicates=%d rcv_ooo=%g rcv_400=%g moves=%g holds=%g abandoned=%g shoal_failed=%g max_lag_s=%.1f",
			p.name, p.replicas, p.end.Sub(p.start).Seconds(), p.swarm.Seconds(), p.converge.Seconds(), p.targets, p.samples, p.maxGap.Seconds(),
			p.gapTargets, p.missing, p.dups, p.rcvOOO, p.rcvRejected, p.moves(), p.holds, p.abandoned, p.failed, p.maxLag.Seconds())
	}
	logs := st.logs(ctx, "shoal", 100000)
	boot := strings.Count(logs, "starting a new cluster (--cluster.bootstrap)")
	t.Logf("Docker Swarm (stack %s, %d targets):\n%s\nagents that started a new cluster (--cluster.bootstrap): %d",
		filepath.Base(st.file), farmTargets, table(phases, interval), boot)
	// Holds given up are not a failure of the bars (the samples arrive,
	// in order), but they delay delivery: show the agents' own words.
	var gaveUp []string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, "without waiting any longer for its previous owner") {
			gaveUp = append(gaveUp, strings.TrimSpace(l))
		}
	}
	if len(gaveUp) > 0 {
		t.Logf("%d handoff holds given up (--storage.remote.handoff-wait); the first ones:\n%s", len(gaveUp), strings.Join(gaveUp[:min(len(gaveUp), 4)], "\n"))
	}

	for _, p := range phases {
		require.Equal(t, farmTargets, p.targets, "%s: targets with samples at the receiver", p.name)
		require.Zero(t, p.gapTargets, "%s: targets with a gap over one interval (max gap %v)", p.name, p.maxGap)
		require.Zero(t, p.rcvOOO, "%s: samples the receiver refused as out of order", p.name)
		require.Zero(t, p.rcvRejected, "%s: remote-write requests the receiver answered 400", p.name)
	}
	require.LessOrEqual(t, boot, 1, "only slot 1 may start a new cluster")
}

// scrapeInterval reads the agents' global scrape interval from the stack's
// shoal configuration, the interval the gaps are judged against.
func scrapeInterval(t *testing.T, path string) time.Duration {
	cfg, err := config.LoadFile(path, true, nil)
	require.NoError(t, err)
	iv := time.Duration(cfg.GlobalConfig.ScrapeInterval)
	require.Positive(t, iv, "%s: global.scrape_interval", path)
	return iv
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

//go:build linux

package dockertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// fleetPartition runs Consul, the farm (registered in Consul) and a strict
// Prometheus receiver on one network with three agents, which gossip over a
// second one (fixed addresses). Disconnecting one agent from the gossip
// network partitions the fleet 2 | 1 while both sides still reach Consul,
// the targets and the receiver: each side must declare the other dead and
// scrape every target (duplicates are acceptable, gaps are not), and the
// fleet must be one cluster again soon after the agent is reconnected.
func (d *docker) fleetPartition(t *testing.T, net string) {
	ctx := t.Context()
	// The images get the host's binaries: Consul's and Prometheus'.
	testenv.SkipWithout(t, testenv.PrometheusBinary, testenv.ConsulBinary)
	promBin, err := testenv.PrometheusBinary.Find()
	require.NoError(t, err)
	consulBin, err := testenv.ConsulBinary.Find()
	require.NoError(t, err)
	imgProm, err := d.scratchImage(ctx, "prometheus", promBin)
	require.NoError(t, err)
	imgConsul, err := d.scratchImage(ctx, "consul", consulBin)
	require.NoError(t, err)

	consul := d.id + "-consul"
	_, err = d.run(ctx, "run", "-d", "--name", consul, "--label", d.label, "--network", net, "--network-alias", "consul",
		"-p", "127.0.0.1::8500", "--tmpfs", "/tmp", imgConsul, "agent", "-dev", "-client=0.0.0.0", "-log-level=warn")
	require.NoError(t, err)
	cport, err := d.publishedPort(ctx, consul, 8500)
	require.NoError(t, err)
	ccfg := api.DefaultConfig()
	ccfg.Address = "127.0.0.1:" + cport
	tr := ccfg.Transport
	t.Cleanup(tr.CloseIdleConnections)
	cc, err := api.NewClient(ccfg)
	require.NoError(t, err)
	require.NoError(t, e2e.Poll(ctx, readyTimeout, 500*time.Millisecond, func(context.Context) error {
		_, err := cc.Status().Leader()
		return err
	}), "consul has no leader")
	_, err = d.run(ctx, "run", "-d", "--name", d.id+"-farm", "--label", d.label, "--network", net, "--network-alias", "farm",
		d.image("farm"), "--listen-host=0.0.0.0", fmt.Sprintf("--base-port=%d", farmBasePort), fmt.Sprintf("--targets=%d", farmTargets),
		"--series=5", "--consul.address=consul:8500", "--consul.advertise-host=farm")
	require.NoError(t, err)
	require.NoError(t, e2e.WaitPassing(ctx, cc, "farm", farmTargets, readyTimeout))
	t.Logf("consul in a container: %d farm targets registered and passing", farmTargets)

	receiver := d.id + "-receiver"
	require.NoError(t, d.createWithConfig(ctx, receiver, "/prometheus.yml", "global: {}\n", nil, "--network", net, "--network-alias", "receiver",
		"-p", "127.0.0.1::9090", "--tmpfs", "/prometheus", imgProm,
		"--config.file=/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.enable-remote-write-receiver"))
	rport, err := d.publishedPort(ctx, receiver, 9090)
	require.NoError(t, err)
	rcv, err := testenv.ReceiverAt("http://127.0.0.1:" + rport)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Stop() })
	require.NoError(t, e2e.Poll(ctx, readyTimeout, 500*time.Millisecond, func(ctx context.Context) error {
		_, err := rcv.Query(ctx, "up", time.Now())
		return err
	}), "receiver not ready")

	gnet := d.id + "-gossip"
	subnet := fmt.Sprintf("10.%d.%d", rand.IntN(200)+20, rand.IntN(250))
	_, err = d.run(ctx, "network", "create", "--label", d.label, "--subnet", subnet+".0/24", gnet)
	require.NoError(t, err)
	gip := func(n int) string { return fmt.Sprintf("%s.%d", subnet, 10+n) }
	// Below the scrape interval, as the README advises (and shoal warns
	// otherwise): with Prometheus' 5 s a quiet queue holds the cut-off
	// agent's samples long enough for the other side's to overtake them.
	cfg := testenv.PromConfig{
		ScrapeInterval: interval, ConsulAddr: "consul:8500", Services: []string{"farm"},
		RemoteWriteURL: "http://receiver:9090/api/v1/write", ProtobufMessage: "io.prometheus.write.v2.Request",
	}.Render()
	var fleet []string
	for n := 1; n <= 3; n++ {
		c := fmt.Sprintf("%s-fleet-%d", d.id, n)
		require.NoError(t, d.createWithConfig(ctx, c, "/etc/shoal/fleet.yml", cfg, func() error {
			if err := d.copyKey(ctx, c); err != nil {
				return err
			}
			_, err := d.run(ctx, "network", "connect", "--ip", gip(n), gnet, c)
			return err
		}, "--hostname", fmt.Sprintf("fleet-%d", n), "--network", net, "-p", "127.0.0.1::9090", d.image("shoal"),
			"--config.file=/etc/shoal/fleet.yml", "--storage.path=/data",
			fmt.Sprintf("--cluster.node-name=fleet-%d", n), "--cluster.listen-address=0.0.0.0:7946",
			"--cluster.advertise-address="+gip(n)+":7946",
			"--consul.address=consul:8500", "--consul.register=shoal", "--cluster.join=consul+shoal",
			"--storage.remote.flush-deadline=5s", keyFlag))
		fleet = append(fleet, c)
	}
	clients := d.readyClients(t, fleet)
	for _, c := range clients {
		require.NoError(t, waitView(ctx, c, clusterTimeout, "fleet-1", "fleet-2", "fleet-3"))
	}
	require.NoError(t, e2e.WaitPassing(ctx, cc, "shoal", 3, readyTimeout))
	t.Log("container fleet: three agents registered in consul, joined through it, one cluster")
	// The joiners' handoff lead (5 s), then long enough for the first
	// owners' samples to reach the receiver: samples still in flight on the
	// cut-off side when the other side takes its targets over arrive after
	// the takeover's and a strict receiver rejects them (README, "What does
	// not work yet"). The partition bar is about a settled fleet.
	time.Sleep(12 * time.Second)
	start := time.Now().Add(-2 * time.Second)

	t0 := time.Now()
	_, err = d.run(ctx, "network", "disconnect", gnet, fleet[2])
	require.NoError(t, err)
	require.NoError(t, waitView(ctx, clients[0], 30*time.Second, "fleet-1", "fleet-2"))
	require.NoError(t, waitView(ctx, clients[2], 30*time.Second, "fleet-3"))
	t.Logf("partition: both sides re-sharded after %v", time.Since(t0).Round(time.Second))
	time.Sleep(12 * time.Second)
	// The heal is when docker network connect returns (the engine takes a
	// while to plumb the interface back); connect is that while.
	healCmd := time.Now()
	_, err = d.run(ctx, "network", "connect", "--ip", gip(3), gnet, fleet[2])
	require.NoError(t, err)
	healed := time.Now()
	// Poll every 50 ms until each agent shows three active members that
	// agree; the merge time is when the last one did.
	var merge time.Duration
	for _, c := range clients {
		require.NoError(t, e2e.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
			return view(ctx, c, "fleet-1", "fleet-2", "fleet-3")
		}), "no single cluster of 3 within 30s of the heal")
		merge = max(merge, time.Since(healed))
	}
	t.Logf("healed: one cluster again %d ms after docker network connect returned (it took %d ms)", merge.Milliseconds(), healed.Sub(healCmd).Milliseconds())
	time.Sleep(14 * time.Second)
	d.checkGaps(t, rcv, start, time.Now().Add(-6*time.Second), merge, healed.Sub(healCmd))
}

// checkGaps analyzes every target's samples over the window with the fleet
// tests' analysis (e2e.Analyze). Remote write sends within its batch
// deadline: the window ends 6 s ago, all of which has arrived. The bar is
// the fleet harness' partition bar: no target misses more than one slot.
// One missed slot is tolerated because on a loaded machine a scrape can
// time out (up=0, counted as failed scrapes) without any partition.
func (d *docker) checkGaps(t *testing.T, rcv *testenv.Receiver, start, end time.Time, merge, connect time.Duration) {
	ctx := t.Context()
	samples, err := e2e.Collect(ctx, rcv, `farm_scrapes_total`, start, end)
	require.NoError(t, err)
	up, err := e2e.Collect(ctx, rcv, `up`, start, end)
	require.NoError(t, err)
	w := e2e.Window{Start: start, End: end, Interval: interval}
	var instances, gapsAt []string
	for inst := range samples {
		instances = append(instances, inst)
	}
	slices.Sort(instances)
	stats := e2e.AnalyzeAll(samples, instances, w, false)
	withGap, withBigGap, failed := 0, 0, 0
	for _, st := range stats {
		if st.Gaps > 0 {
			withGap++
			gapsAt = append(gapsAt, st.Instance)
		}
		if float64(st.MaxGap) > 2.5*float64(interval) {
			withBigGap++
		}
	}
	for _, ss := range up {
		for _, s := range ss {
			if s.V == 0 {
				failed++
			}
		}
	}
	sum := e2e.Summarize(stats)
	where := strings.Join(gapsAt, " ")
	if where == "" {
		where = "none"
	}
	t.Logf("container fleet partition: targets=%d want=%d max_gap_s=%.2f targets_with_gap=%d targets_with_big_gap=%d failed_scrapes=%d gaps_at=%s merge_ms=%d connect_ms=%d",
		len(stats), farmTargets, sum.MaxGap.Seconds(), withGap, withBigGap, failed, where, merge.Milliseconds(), connect.Milliseconds())
	require.Len(t, stats, farmTargets, "the receiver has not every target")
	require.Zero(t, withBigGap, "a target missed more than one scrape during the partition")
}

// view returns nil when the agent's active members are want and agree.
func view(ctx context.Context, c *e2e.Client, want ...string) error {
	m, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if got := m.Active(); !m.Agree || !slices.Equal(got, want) {
		return fmt.Errorf("sees %v (agree=%v), want %v", got, m.Agree, want)
	}
	return nil
}

func waitView(ctx context.Context, c *e2e.Client, timeout time.Duration, want ...string) error {
	return e2e.Poll(ctx, timeout, 200*time.Millisecond, func(ctx context.Context) error { return view(ctx, c, want...) })
}

//go:build linux

package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// readyTimeout bounds how long a container may take to answer.
	readyTimeout = 60 * time.Second
	// clusterTimeout bounds how long three agents may take to converge.
	clusterTimeout = 60 * time.Second
	farmTargets    = 6
	farmBasePort   = 10000
	// interval is the scrape interval of the containers' configurations.
	interval = 2 * time.Second
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDockerImage checks the container images built from the real
// Dockerfile, without a registry: nothing is pulled.
//
//  1. builds shoal and shoal-farm on the host and the Dockerfile's runtime
//     stages with the builder stage replaced by those binaries (every other
//     line of the Dockerfile is used as it is), and checks the images'
//     metadata (non-root user, ports, entrypoint, volume, version);
//  2. on a private network: one agent with the image's defaults gets ready;
//     three agents joining with --cluster.join=dns+shoal:7946 (a network
//     alias) form one cluster that agrees and shares the farm's targets,
//     each scraped by one agent; a stopped agent exits 0;
//  3. a container fleet as operators run it with Consul (Consul and a strict
//     remote-write 2.0 receiver in images FROM scratch around
//     .cache/bin/consul and .cache/bin/prometheus): one agent is
//     disconnected from the gossip network (a 2 | 1 partition in which both
//     sides still reach Consul, targets and receiver) and reconnected; at the
//     receiver no target may miss more than one scrape (e2e.Analyze), and
//     the merge time is reported.
//
// Everything it creates carries one label and is removed at the end.
func TestDockerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("dockertest: skipped in -short mode")
	}
	requireDocker(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	d := newDocker(t)
	ctx := t.Context()

	version := "docker-test-" + gitDescribe(root)
	require.NoError(t, d.buildImages(ctx, root, version))
	d.checkMetadata(t, version)

	net := d.id
	_, err = d.run(ctx, "network", "create", "--label", d.label, net)
	require.NoError(t, err)

	t.Run("default", func(t *testing.T) {
		// Secure by default: on a Docker network, not loopback, the image's
		// defaults refuse to gossip without a key, and say how to make one.
		out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--label", d.label, "--network", net, d.image("shoal")).CombinedOutput()
		require.Error(t, err, "an agent without a gossip key started on a non-loopback address: %s", out)
		require.Contains(t, string(out), "--cluster.secret-key-file")
		require.Contains(t, string(out), "openssl rand -base64 32")
		// The explicit opt-out starts with the image's other defaults.
		c := d.id + "-default"
		_, err = d.run(ctx, "run", "-d", "--name", c, "--label", d.label, "--network", net, "-p", "127.0.0.1::9090",
			"-e", "SHOAL_CLUSTER_INSECURE=true", d.image("shoal"))
		require.NoError(t, err)
		t0 := time.Now()
		require.NoError(t, d.waitReady(ctx, c))
		t.Logf("default agent ready after %v (image defaults: /etc/shoal/shoal.yml, /data)", time.Since(t0).Round(time.Second))
		_, err = d.run(ctx, "rm", "-f", "-v", c)
		require.NoError(t, err)
	})
	t.Run("dns cluster", func(t *testing.T) { d.dnsCluster(t, net) })
	t.Run("consul fleet partition", func(t *testing.T) { d.fleetPartition(t, net) })
}

// dnsCluster runs the farm and three agents that join through a network
// alias and scrape it with static_configs, remote writing nowhere.
func (d *docker) dnsCluster(t *testing.T, net string) {
	ctx := t.Context()
	_, err := d.run(ctx, "run", "-d", "--name", d.id+"-farm", "--label", d.label, "--network", net, "--network-alias", "farm",
		d.image("farm"), "--listen-host=0.0.0.0", fmt.Sprintf("--base-port=%d", farmBasePort), fmt.Sprintf("--targets=%d", farmTargets), "--series=5")
	require.NoError(t, err)
	var targets []string
	for i := range farmTargets {
		targets = append(targets, fmt.Sprintf("%q", fmt.Sprintf("farm:%d", farmBasePort+i)))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
scrape_configs:
  - job_name: farm
    static_configs:
      - targets: [%s]
remote_write:
  # Nothing listens there: the agents must be ready regardless.
  - url: http://receiver.invalid:9090/api/v1/write
`, testenv.PromDuration(interval), strings.Join(targets, ", "))
	var agents []string
	for n := 1; n <= 3; n++ {
		c := fmt.Sprintf("%s-shoal-%d", d.id, n)
		require.NoError(t, d.createWithConfig(ctx, c, "/etc/shoal/cluster.yml", cfg, func() error { return d.copyKey(ctx, c) },
			"--hostname", fmt.Sprintf("shoal-%d", n),
			"--network", net, "--network-alias", "shoal", "-p", "127.0.0.1::9090", d.image("shoal"),
			"--config.file=/etc/shoal/cluster.yml", "--storage.path=/data", "--cluster.join=dns+shoal:7946", keyFlag,
			"--cluster.rejoin-interval=2s", "--cluster.handoff-timeout=10s", "--storage.remote.flush-deadline=5s"))
		agents = append(agents, c)
	}
	clients := d.readyClients(t, agents)
	t0 := time.Now()
	for _, c := range clients {
		require.NoError(t, e2e.Poll(ctx, clusterTimeout, 500*time.Millisecond, func(ctx context.Context) error {
			m, err := c.Members(ctx)
			if err != nil {
				return err
			}
			if len(m.Active()) != 3 || !m.Agree || m.Owned() != farmTargets {
				return fmt.Errorf("active=%v agree=%v owned=%d", m.Active(), m.Agree, m.Owned())
			}
			return nil
		}), "no single cluster of 3 sharing %d targets", farmTargets)
	}
	t.Logf("one cluster of 3 after %v", time.Since(t0).Round(time.Second))
	// Every agent scrapes its share: /api/v1/targets lists only owned
	// targets, once the scrape pools have caught up with the ring.
	require.NoError(t, e2e.Poll(ctx, clusterTimeout, 500*time.Millisecond, func(ctx context.Context) error {
		up := 0
		for _, c := range clients {
			ts, err := c.ActiveTargets(ctx)
			if err != nil {
				return err
			}
			for _, tg := range ts {
				if tg.Health == "up" {
					up++
				}
			}
		}
		if up != farmTargets {
			return fmt.Errorf("agents scrape %d healthy targets in all, want %d", up, farmTargets)
		}
		return nil
	}))
	// A stopped agent hands its targets over and exits 0 on SIGTERM as PID
	// 1, within its handoff timeout plus its flush deadline.
	t0 = time.Now()
	_, err = d.run(ctx, "stop", "-t", "30", agents[2])
	require.NoError(t, err)
	code, err := d.run(ctx, "inspect", "-f", "{{.State.ExitCode}}", agents[2])
	require.NoError(t, err)
	require.Equal(t, "0", code, "%s exit code on SIGTERM", agents[2])
	t.Logf("agent 3 stopped cleanly (exit 0) in %v", time.Since(t0).Round(time.Second))
	_, err = d.run(ctx, append([]string{"rm", "-f", "-v", d.id + "-farm"}, agents...)...)
	require.NoError(t, err)
}

// requireDocker skips the test when no Docker engine answers, or fails it
// under SHOAL_REQUIRE_INTEGRATION=1.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("dockertest: no Docker engine: docker info: %v: %s", err, strings.TrimSpace(string(out)))
	if os.Getenv(testenv.EnvRequireIntegration) == "1" {
		t.Fatal(msg + "; failing because " + testenv.EnvRequireIntegration + "=1")
	}
	t.Skip(msg)
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

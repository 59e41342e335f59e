package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	agents = 3
	// maxTargets fits the farm between its base port (+50) and the end of
	// the demo's 100 ports.
	maxTargets = 49
	portSpan   = 99
	// The agents' scrape interval, and the receiver's for the agents'
	// /metrics.
	scrapeInterval   = 5 * time.Second
	receiverInterval = 10 * time.Second
	// Prometheus' default Consul SD refresh interval.
	sdRefresh = 30 * time.Second
	// settleTimeout bounds how long the three agents may take to form one
	// cluster; gossip needs seconds, the rest is headroom for a cold
	// machine.
	settleTimeout = 2 * time.Minute
	// checkGrace is how long the final self-check may wait for the last
	// scrapes to reach the receiver.
	checkGrace = 30 * time.Second
	// agentService is the Consul service the agents register as.
	agentService = "shoal"
)

// config is the demo's setup.
type config struct {
	out                          io.Writer
	shoalBin, dir                string
	duration, refresh            time.Duration
	targets, unhealthy, portBase int
}

// demo is a running demo fleet.
type demo struct {
	cfg      config
	g        *testenv.Group
	consul   *testenv.Consul
	receiver *testenv.Receiver
	farm     *farm.Farm
	agents   []*e2e.Agent
}

func (d *demo) logf(format string, args ...any) {
	fmt.Fprintf(d.cfg.out, "demo: "+format+"\n", args...)
}

// runDemo starts the fleet, prints the summary until ctx ends or the
// duration passes, checks it when a duration is set, and stops everything.
func runDemo(ctx context.Context, cfg config) (err error) {
	if cfg.shoalBin == "" {
		d0 := &demo{cfg: cfg}
		d0.logf("building shoal")
		if cfg.shoalBin, err = e2e.Binary(); err != nil {
			return err
		}
		defer e2e.RemoveBinary()
	}
	d := &demo{cfg: cfg}
	if err := d.prepare(); err != nil {
		return err
	}
	defer func() {
		d.stop()
		if err != nil {
			fmt.Fprint(cfg.out, d.g.LogTails())
		}
		d.logf("stopped; logs are in %s/", cfg.dir)
	}()
	if err := d.start(ctx); err != nil {
		return err
	}
	d.printURLs()
	return d.watch(ctx)
}

// prepare wipes the directory and checks that the ports are free.
func (d *demo) prepare() error {
	if err := os.RemoveAll(d.cfg.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.dir, 0o755); err != nil {
		return err
	}
	d.g = testenv.NewGroup(d.cfg.dir)
	b := d.cfg.portBase
	ports := []int{b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 10}
	for n := 1; n <= agents; n++ {
		ports = append(ports, d.webPort(n), d.gossipPort(n))
	}
	for i := range d.cfg.targets {
		ports = append(ports, d.farmPort()+i)
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", testenv.Loopback(p))
		if err != nil {
			return fmt.Errorf("port 127.0.0.1:%d is in use; set DEMO_PORT_BASE to another range (now %d)", p, b)
		}
		_ = l.Close()
	}
	return nil
}

func (d *demo) webPort(n int) int    { return d.cfg.portBase + 10 + n }
func (d *demo) gossipPort(n int) int { return d.cfg.portBase + 20 + n }
func (d *demo) farmPort() int        { return d.cfg.portBase + 50 }

// start starts Consul, the receiver, the farm and the agents, the first
// agent alone: an agent's Consul check passes only once it is ready, so
// agents started together would find no peer and each start a cluster.
func (d *demo) start(ctx context.Context) error {
	var err error
	b := d.cfg.portBase
	d.logf("starting consul (dev agent) on 127.0.0.1:%d", b)
	if d.consul, err = testenv.RunConsul(ctx, d.g, testenv.ConsulOptions{
		Ports: []int{b, b + 1, b + 3, b + 4, b + 2, b + 5}, NodeName: "shoal-demo", UI: true,
	}); err != nil {
		return err
	}
	d.logf("starting the receiver on 127.0.0.1:%d", b+10)
	if d.receiver, err = testenv.RunReceiver(ctx, d.g, testenv.ReceiverOptions{Port: b + 10, Config: testenv.PromConfig{
		ScrapeInterval: receiverInterval, Job: agentService, ConsulAddr: d.consul.Addr, Services: []string{agentService}, SDRefresh: sdRefresh,
	}}); err != nil {
		return err
	}
	d.logf("starting the farm: %d targets, %d unhealthy, registered in consul as %s", d.cfg.targets, d.cfg.unhealthy, farm.DefaultService)
	if d.farm, err = e2e.StartFarm(ctx, d.g, d.consul.Client(), farm.Config{
		Targets: d.cfg.targets, Unhealthy: d.cfg.unhealthy, Series: 10, BasePort: d.farmPort(),
	}); err != nil {
		return err
	}
	if err := d.checkConfig(ctx); err != nil {
		return err
	}
	for n := 1; n <= agents; n++ {
		d.logf("starting shoal-%d on 127.0.0.1:%d (gossip %d)", n, d.webPort(n), d.gossipPort(n))
		a, err := e2e.NewAgent(d.g, d.agentOptions(n))
		if err != nil {
			return err
		}
		d.agents = append(d.agents, a)
		if err := a.Start(ctx); err != nil {
			return err
		}
		if n == 1 {
			if err := e2e.Poll(ctx, settleTimeout, 300*time.Millisecond, d.agentRegistered); err != nil {
				return fmt.Errorf("shoal-1 in consul: %w", err)
			}
		}
	}
	return e2e.Poll(ctx, settleTimeout, 300*time.Millisecond, d.settled)
}

// promConfig is the agents' configuration: a plain Prometheus
// configuration. Every agent discovers all farm targets in Consul and
// scrapes those the ring gives it.
func (d *demo) promConfig() testenv.PromConfig {
	return testenv.PromConfig{
		ScrapeInterval: scrapeInterval, ScrapeTimeout: scrapeInterval,
		ConsulAddr: d.consul.Addr, Services: []string{farm.DefaultService}, SDRefresh: sdRefresh,
		RemoteWriteURL: d.receiver.RemoteWriteURL,
	}
}

func (d *demo) agentOptions(n int) e2e.AgentOptions {
	return e2e.AgentOptions{
		Name: fmt.Sprintf("shoal-%d", n), Bin: d.cfg.shoalBin, Config: d.promConfig(), NoAgentLabel: true,
		WebPort: d.webPort(n), GossipPort: d.gossipPort(n),
		Join: []string{"consul+" + agentService}, ConsulAddress: d.consul.Addr, ConsulRegister: agentService,
		// shoal-1 starts alone, before the others: Consul lists nobody else
		// yet, and only --cluster.bootstrap lets it start a new cluster.
		Bootstrap: n == 1,
	}
}

// checkConfig runs `shoal check config` on the agents' configuration.
func (d *demo) checkConfig(ctx context.Context) error {
	path := filepath.Join(d.cfg.dir, "shoal.yml")
	if err := os.WriteFile(path, []byte(d.promConfig().Render()), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, d.cfg.shoalBin, "check", "config", path).CombinedOutput(); err != nil {
		return fmt.Errorf("shoal check config %s: %w: %s", path, err, out)
	}
	return nil
}

func (d *demo) agentRegistered(context.Context) error {
	entries, _, err := d.consul.Client().Health().Service(agentService, "", true, nil)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return errors.New("no passing instance yet")
	}
	return nil
}

// settled returns nil when every agent sees all of them active and agrees
// on the ring.
func (d *demo) settled(ctx context.Context) error {
	var names []string
	for _, a := range d.agents {
		names = append(names, a.Name)
	}
	for _, a := range d.agents {
		m, err := a.Members(ctx)
		if err != nil {
			return err
		}
		if got := m.Active(); !m.Agree || strings.Join(got, ",") != strings.Join(names, ",") {
			return fmt.Errorf("%s sees active members %v (agree=%v), want %v", a.Name, got, m.Agree, names)
		}
	}
	return nil
}

func (d *demo) printURLs() {
	var b strings.Builder
	fmt.Fprintf(&b, "\nshoal demo is running (%s); logs, configs and data in %s/\n", time.Now().Format(time.TimeOnly), d.cfg.dir)
	for i, a := range d.agents {
		extra := ""
		if i == 0 {
			extra = "   status page (also /api/v1/cluster/members, /api/v1/cluster/targets)"
		}
		fmt.Fprintf(&b, "  %s   %s/%s\n", a.Name, a.URL, extra)
	}
	fmt.Fprintf(&b, "  receiver  %s/query?g0.expr=count+by+%%28target%%29+%%28up%%7Bjob%%3D%%22farm%%22%%7D%%29\n", d.receiver.URL)
	fmt.Fprintf(&b, "  consul    http://%s/ui/\n", d.consul.Addr)
	fmt.Fprintf(&b, "Try: kill -TERM %d (shoal-2) and watch its targets move.\n", d.agents[1].Pid())
	if d.cfg.duration > 0 {
		fmt.Fprintf(&b, "Stopping after %v (DEMO_DURATION).\n\n", d.cfg.duration)
	} else {
		b.WriteString("Ctrl-C stops everything.\n\n")
	}
	fmt.Fprint(d.cfg.out, b.String())
}

// stop stops the agents together (each hands its targets over and
// flushes), then everything else, last started first.
func (d *demo) stop() {
	d.logf("stopping: agents (handoff and flush), then the farm, receiver, consul")
	var wg sync.WaitGroup
	for _, a := range d.agents {
		wg.Go(func() {
			if err := a.Stop(); err != nil {
				d.logf("%v", err)
			}
		})
	}
	wg.Wait()
	if err := d.g.Close(); err != nil {
		d.logf("%v", err)
	}
}

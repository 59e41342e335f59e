package e2e

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-dev/shoal/internal/farm"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// consulSyncTimeout bounds how long Consul may take to show the farm's
// registrations with their initial health.
const consulSyncTimeout = 60 * time.Second

// EnvOptions configures StartEnv.
type EnvOptions struct {
	// Targets is the number of farm targets, at least 1.
	Targets int
	// Unhealthy is how many of them fail their Consul check.
	Unhealthy int
	// Sizes, when set, gives the targets unequal numbers of series (see
	// farm.Config.Sizes).
	Sizes []int
	// Receiver configures the remote-write receiver.
	Receiver testenv.ReceiverOptions
	// ConsulACLToken, when set, turns Consul's ACLs on (default deny) with
	// this management token, which PromConfig's discovery uses.
	ConsulACLToken string
}

// Env is what agents run against: a Consul agent in which the farm's targets
// are registered, the farm serving them, and a remote-write receiver.
type Env struct {
	Consul       *testenv.Consul
	ConsulClient *api.Client
	Receiver     *testenv.Receiver
	Farm         *farm.Farm
	// Group owns everything the environment and its agents start.
	Group *testenv.Group

	holdConsul, holdReceiver func() // see StopConsul, StopReceiver
	consulToken              string
}

// StartEnv starts Consul, the receiver and the farm, registers the targets
// and waits until Consul lists them all with their initial health. Closing g
// stops everything; when it is a test's, a failure also logs the farm's
// checks that Consul does not see passing.
func StartEnv(ctx context.Context, g *testenv.Group, opts EnvOptions) (*Env, error) {
	if _, err := Binary(); err != nil { // fail before starting anything else
		return nil, err
	}
	e := &Env{Group: g}
	var err error
	if e.Consul, err = testenv.RunConsul(ctx, g, testenv.ConsulOptions{ACLToken: opts.ConsulACLToken}); err != nil {
		return nil, err
	}
	e.consulToken = opts.ConsulACLToken
	e.ConsulClient = e.Consul.Client()
	if e.Receiver, err = testenv.RunReceiver(ctx, g, opts.Receiver); err != nil {
		return nil, err
	}
	if e.Farm, err = StartFarm(ctx, g, e.ConsulClient, farm.Config{Targets: opts.Targets, Unhealthy: opts.Unhealthy, Sizes: opts.Sizes}); err != nil {
		return nil, err
	}
	g.Note(func() string { return consulChecks(e.ConsulClient, farm.DefaultService) })
	return e, nil
}

// StartFarm starts the farm, registers its targets in Consul and waits
// until Consul lists the healthy ones passing. Closing g stops it.
func StartFarm(ctx context.Context, g *testenv.Group, cc *api.Client, cfg farm.Config) (*farm.Farm, error) {
	f, err := farm.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start farm: %w", err)
	}
	g.OnClose(f.Close)
	if err := f.Register(ctx, cc); err != nil {
		return nil, fmt.Errorf("register farm targets in consul: %w", err)
	}
	return f, WaitPassing(ctx, cc, cmp.Or(cfg.Service, farm.DefaultService), cfg.Targets-cfg.Unhealthy, consulSyncTimeout)
}

// WaitPassing waits until Consul lists exactly want instances of service
// passing their checks; after timeout it returns what it lists.
func WaitPassing(ctx context.Context, cc *api.Client, service string, want int, timeout time.Duration) error {
	return Poll(ctx, timeout, 100*time.Millisecond, func(context.Context) error {
		entries, _, err := cc.Health().Service(service, "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != want {
			return fmt.Errorf("consul lists %d passing %s instances, want %d", len(entries), service, want)
		}
		return nil
	})
}

// PromConfig returns an agent configuration scraping the farm's service and
// writing to the receiver, with the default scrape interval.
func (e *Env) PromConfig() PromConfig {
	return PromConfig{
		ConsulAddr:     e.Consul.Addr,
		ConsulToken:    e.consulToken,
		Services:       []string{farm.DefaultService},
		RemoteWriteURL: e.Receiver.RemoteWriteURL,
	}
}

// Instances returns the instance labels ("host:port") of the healthy or of
// the unhealthy targets, sorted.
func (e *Env) Instances(healthy bool) []string {
	var out []string
	for _, t := range e.Farm.Targets() {
		if t.Healthy == healthy {
			out = append(out, t.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// StartCluster starts n agents with the environment's configuration; see
// the package function StartCluster.
func (e *Env) StartCluster(ctx context.Context, n int, prefix string, modify func(i int, o *AgentOptions)) ([]*Agent, error) {
	return StartCluster(ctx, e.Group, n, AgentOptions{Name: prefix, Config: e.PromConfig()}, modify)
}

// StartCluster starts n agents with the options base, one after another,
// each joining the ones started before it and ready before the next starts
// (the first with Bootstrap).
// Once all are ready, every agent's Opts.Join lists all the others, so a
// restarted agent rejoins whichever are up. Names are "<base.Name>-<i>";
// modify sets further options per agent (it may be nil).
func StartCluster(ctx context.Context, g *testenv.Group, n int, base AgentOptions, modify func(i int, o *AgentOptions)) ([]*Agent, error) {
	agents := make([]*Agent, 0, n)
	for i := range n {
		o := base
		o.Name = fmt.Sprintf("%s-%d", base.Name, i)
		o.Join = slices.Clone(base.Join)
		o.ExtraArgs = slices.Clone(base.ExtraArgs)
		for _, prev := range agents {
			o.Join = append(o.Join, prev.GossipAddr)
		}
		// The first one starts the cluster; with a join list (consul+) it
		// would otherwise wait for a peer that is started after it.
		o.Bootstrap = i == 0
		if modify != nil {
			modify(i, &o)
		}
		a, err := StartAgent(ctx, g, o)
		if a != nil {
			agents = append(agents, a)
		}
		if err != nil {
			return agents, err
		}
	}
	for _, a := range agents {
		a.Opts.Join = a.Opts.Join[:0]
		for _, b := range agents {
			if b != a {
				a.Opts.Join = append(a.Opts.Join, b.GossipAddr)
			}
		}
	}
	return agents, nil
}

// consulChecks describes the checks of service Consul does not see
// passing, with their output, for a failure.
func consulChecks(cc *api.Client, service string) string {
	entries, _, err := cc.Health().Service(service, "", false, nil)
	if err != nil {
		return fmt.Sprintf("e2e: consul health of %s: %v\n", service, err)
	}
	var b strings.Builder
	for _, en := range entries {
		for _, c := range en.Checks {
			if c.Status != "passing" {
				fmt.Fprintf(&b, "e2e: consul check %s of %s:%d is %s: %s\n", c.CheckID, en.Service.Address, en.Service.Port, c.Status, c.Output)
			}
		}
	}
	return b.String()
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/agent"
)

// requestTimeout bounds each request to an agent's HTTP API.
const requestTimeout = 5 * time.Second

// The agent's own API types, which the server writes: the client decodes
// into them, so the two cannot drift apart. The names are the ones the
// harness' callers have used.
type (
	// ActiveTarget is one target an agent scrapes, from /api/v1/targets.
	ActiveTarget = agent.Target
	// ClusterTarget is one discovered target with its owners, from
	// /api/v1/cluster/targets.
	ClusterTarget = agent.ClusterTarget
	// ClusterTargets is an agent's view of where every discovered target goes.
	ClusterTargets = agent.ClusterTargets
	// Member is one member in /api/v1/cluster/members.
	Member = agent.Member
	// Members is an agent's view of the cluster, from /api/v1/cluster/members.
	Members = agent.Members
	// Self is an agent's own figures, from /api/v1/cluster/self.
	Self = agent.Self
	// LeaderInfo is who plans placement, from /api/v1/cluster/leader.
	LeaderInfo = agent.LeaderInfo
	// LoadReport is what an agent's targets cost it, from
	// /api/v1/cluster/load.
	LoadReport = agent.LoadReport
	// Placement is the leader's measurement and the plan, from
	// /api/v1/cluster/placement.
	Placement = agent.Placement
	// Quarantine is the targets an agent holds in quarantine, from
	// /api/v1/cluster/quarantine.
	Quarantine = agent.Quarantine
	// QuarantinedTarget is one held target in a Quarantine.
	QuarantinedTarget = agent.QuarantinedTarget
	// PlanInfo describes a plan in Placement.
	PlanInfo = agent.PlanInfo
)

// Client reads one agent's HTTP API: the one client of shoal's API the
// tests, the demo, the benchmark and the docker test share. Its methods
// return errors, so they can run inside require.Eventually, and are safe
// for concurrent use.
type Client struct {
	name, url string
	hc        *http.Client
}

// NewClient returns a client for the agent named name (for error messages)
// whose web server is at url, e.g. "http://127.0.0.1:9090".
func NewClient(name, url string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Client{name: name, url: url, hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ActiveTargets returns the targets the agent scrapes.
func (c *Client) ActiveTargets(ctx context.Context) ([]ActiveTarget, error) {
	var out agent.Targets
	err := c.getJSON(ctx, "/api/v1/targets?state=active", &out)
	return out.ActiveTargets, err
}

// ClusterTargets returns the agent's placement of every discovered target.
func (c *Client) ClusterTargets(ctx context.Context) (ClusterTargets, error) {
	var out ClusterTargets
	err := c.getJSON(ctx, "/api/v1/cluster/targets", &out)
	return out, err
}

// Members returns the agent's view of the cluster.
func (c *Client) Members(ctx context.Context) (Members, error) {
	var out Members
	err := c.getJSON(ctx, "/api/v1/cluster/members", &out)
	return out, err
}

// Self returns the agent's own figures.
func (c *Client) Self(ctx context.Context) (Self, error) {
	var out Self
	err := c.getJSON(ctx, "/api/v1/cluster/self", &out)
	return out, err
}

// Leader returns who the agent says plans placement.
func (c *Client) Leader(ctx context.Context) (LeaderInfo, error) {
	var out LeaderInfo
	err := c.getJSON(ctx, "/api/v1/cluster/leader", &out)
	return out, err
}

// Load returns the smoothed cost of the targets the agent scraped recently.
func (c *Client) Load(ctx context.Context) (LoadReport, error) {
	var out LoadReport
	err := c.getJSON(ctx, "/api/v1/cluster/load", &out)
	return out, err
}

// Placement returns the agent's view of the load-aware placement.
func (c *Client) Placement(ctx context.Context) (Placement, error) {
	var out Placement
	err := c.getJSON(ctx, "/api/v1/cluster/placement", &out)
	return out, err
}

// Quarantine returns the targets the agent holds in quarantine.
func (c *Client) Quarantine(ctx context.Context) (Quarantine, error) {
	var out Quarantine
	err := c.getJSON(ctx, "/api/v1/cluster/quarantine", &out)
	return out, err
}

// Ready returns nil when /-/ready answers 200.
func (c *Client) Ready(ctx context.Context) error {
	body, code, err := c.get(ctx, "/-/ready")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET /-/ready on %s: %d %s", c.name, code, body)
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	body, code, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s on %s: status %d: %s", path, c.name, code, body)
	}
	env := agent.Response{Data: v}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("decode GET %s on %s: %w", path, c.name, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s on %s: status %q: %s", path, c.name, env.Status, env.Error)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("read GET %s on %s: %w", path, c.name, err)
	}
	return body, resp.StatusCode, nil
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// requestTimeout bounds each request to an agent's HTTP API.
const requestTimeout = 5 * time.Second

// The types below decode shoal's own API. They mirror the JSON of
// agent/api.go field for field (apiTarget, apiMember, apiMembers,
// apiClusterTarget, apiClusterTargets, apiSelf), until agent exports them.

// ActiveTarget is one target an agent scrapes, from /api/v1/targets.
type ActiveTarget struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	Job                string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`
}

// Instance returns the target's instance label.
func (t ActiveTarget) Instance() string { return t.Labels["instance"] }

// ClusterTarget is one discovered target with its owners, from
// /api/v1/cluster/targets.
type ClusterTarget struct {
	Job    string            `json:"job"`
	URL    string            `json:"url"`
	Key    string            `json:"key"`
	Owners []string          `json:"owners"`
	Labels map[string]string `json:"labels"`
}

// ClusterTargets is an agent's view of where every discovered target goes.
type ClusterTargets struct {
	Digest  string          `json:"digest"`
	Jobs    map[string]int  `json:"jobs"`
	Targets []ClusterTarget `json:"targets"`
}

// Owners maps each target's instance label to its owners.
func (c ClusterTargets) Owners() map[string][]string {
	out := make(map[string][]string, len(c.Targets))
	for _, t := range c.Targets {
		out[t.Labels["instance"]] = t.Owners
	}
	return out
}

// Member is one member in /api/v1/cluster/members.
type Member struct {
	Name         string    `json:"name"`
	Addr         string    `json:"addr"`
	State        string    `json:"state"`
	Self         bool      `json:"self"`
	HTTPAddr     string    `json:"httpAddr"`
	Version      string    `json:"version"`
	Digest       string    `json:"digest"`
	Started      time.Time `json:"started"`
	OwnedTargets int       `json:"ownedTargets"`
	Agrees       bool      `json:"agrees"`
}

// Members is an agent's view of the cluster, from /api/v1/cluster/members.
type Members struct {
	Self      string    `json:"self"`
	Digest    string    `json:"digest"`
	Agree     bool      `json:"agree"`
	Disagree  []string  `json:"disagree"`
	RingSize  int       `json:"ringSize"`
	Replicas  int       `json:"replicationFactor"`
	Members   []Member  `json:"members"`
	Generated time.Time `json:"generated"`
}

// Active returns the names of the active members, sorted.
func (m Members) Active() []string {
	var out []string
	for _, mem := range m.Members {
		if mem.State == "active" {
			out = append(out, mem.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Owned returns how many targets the members own in all, by their
// ownedTargets.
func (m Members) Owned() int {
	n := 0
	for _, mem := range m.Members {
		n += mem.OwnedTargets
	}
	return n
}

// Self is an agent's own figures, from /api/v1/cluster/self.
type Self struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	OwnedTargets int    `json:"ownedTargets"`
	Discovered   int    `json:"discoveredTargets"`
	ActiveSeries int64  `json:"activeSeries"`
}

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
	var out struct {
		ActiveTargets []ActiveTarget `json:"activeTargets"`
	}
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
	env := struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}{}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("decode GET %s on %s: %w", path, c.name, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s on %s: status %q: %s", path, c.name, env.Status, env.Error)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return fmt.Errorf("decode data of GET %s on %s: %w", path, c.name, err)
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

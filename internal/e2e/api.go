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

// The methods in this file read an agent's HTTP API. They return errors
// instead of failing the test, so they can run inside require.Eventually,
// and are safe for concurrent use.

// ActiveTarget is one target an agent scrapes, from /api/v1/targets.
type ActiveTarget struct {
	Job        string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastScrape time.Time         `json:"lastScrape"`
	LastError  string            `json:"lastError"`
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
	Name         string `json:"name"`
	Addr         string `json:"addr"`
	State        string `json:"state"`
	Self         bool   `json:"self"`
	OwnedTargets int    `json:"ownedTargets"`
	Agrees       bool   `json:"agrees"`
}

// Members is an agent's view of the cluster.
type Members struct {
	Self     string   `json:"self"`
	Digest   string   `json:"digest"`
	Agree    bool     `json:"agree"`
	Disagree []string `json:"disagree"`
	RingSize int      `json:"ringSize"`
	Members  []Member `json:"members"`
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

// ActiveTargets returns the targets the agent scrapes.
func (a *Agent) ActiveTargets(ctx context.Context) ([]ActiveTarget, error) {
	var out struct {
		ActiveTargets []ActiveTarget `json:"activeTargets"`
	}
	err := a.getJSON(ctx, "/api/v1/targets?state=active", &out)
	return out.ActiveTargets, err
}

// ClusterTargets returns the agent's placement of every discovered target.
func (a *Agent) ClusterTargets(ctx context.Context) (ClusterTargets, error) {
	var out ClusterTargets
	err := a.getJSON(ctx, "/api/v1/cluster/targets", &out)
	return out, err
}

// Members returns the agent's view of the cluster.
func (a *Agent) Members(ctx context.Context) (Members, error) {
	var out Members
	err := a.getJSON(ctx, "/api/v1/cluster/members", &out)
	return out, err
}

// ready returns nil when /-/ready answers 200.
func (a *Agent) ready(ctx context.Context) error {
	body, code, err := a.get(ctx, "/-/ready")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %d %s", code, body)
	}
	return nil
}

func (a *Agent) getJSON(ctx context.Context, path string, v any) error {
	body, code, err := a.get(ctx, path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s on %s: status %d: %s", path, a.Name, code, body)
	}
	env := struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}{}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("decode GET %s on %s: %w", path, a.Name, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s on %s: status %q: %s", path, a.Name, env.Status, env.Error)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return fmt.Errorf("decode data of GET %s on %s: %w", path, a.Name, err)
	}
	return nil
}

func (a *Agent) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("read GET %s on %s: %w", path, a.Name, err)
	}
	return body, resp.StatusCode, nil
}

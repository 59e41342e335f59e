package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/config"
)

// handoffPoll is how often a leaving agent asks its peers whether they
// scrape its targets yet.
const handoffPoll = 100 * time.Millisecond

// handoffRequestTimeout bounds one request to a peer's /api/v1/targets.
const handoffRequestTimeout = 2 * time.Second

// confirmHandoff waits until the new owners of every target this agent
// scrapes list it among their active targets (GET /api/v1/targets), or ctx
// is done. Agreeing on the schedule is not enough: a peer's scrape manager
// applies new targets only every discovery reload interval, and a peer that
// is not scraping a target at the handoff instant misses its first slots. A peer whose API
// cannot be read (TLS or basic auth through --web.config.file, an old
// version) is not waited for.
func (a *Agent) confirmHandoff(ctx context.Context) error {
	// The owners once the leave has taken effect: this node owns its
	// targets now, until the handoff instant.
	v := a.node.View()
	self := v.Self()
	addrs := map[string]string{}
	for _, p := range a.node.Peers() {
		addrs[p.Name] = p.HTTPAddr
	}
	// peer HTTP address -> keys of the targets it must scrape. The key, not
	// the URL: peers' APIs mask their URLs' query values.
	want := map[string]map[string]bool{}
	var owners []string
	for _, t := range a.scraper.Filter().Targets() {
		if !t.Owned {
			continue
		}
		owners = v.FinalOwners(owners[:0], t.Key)
		for _, o := range owners {
			if o == self || addrs[o] == "" {
				continue
			}
			if want[addrs[o]] == nil {
				want[addrs[o]] = map[string]bool{}
			}
			want[addrs[o]][digestString(t.Key)] = true
		}
	}
	client := newPeerClient(handoffRequestTimeout)
	defer client.CloseIdleConnections()
	tick := time.NewTicker(handoffPoll)
	defer tick.Stop()
	for {
		for addr, targets := range want {
			active, err := peerActiveTargets(ctx, client, addr)
			if err != nil {
				a.logger.Debug("cannot ask a peer for its targets, not waiting for it", "peer", addr, "err", err)
				delete(want, addr)
				continue
			}
			for _, t := range active {
				delete(targets, t.Key)
			}
			if len(targets) == 0 {
				delete(want, addr)
			}
		}
		if len(want) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n := 0
			for _, t := range want {
				n += len(t)
			}
			return fmt.Errorf("wait for %d peers to scrape %d targets: %w", len(want), n, ctx.Err())
		case <-tick.C:
		}
	}
}

// peerActiveTargets reads a peer's /api/v1/targets?state=active.
func peerActiveTargets(ctx context.Context, client *http.Client, addr string) ([]Target, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/targets?state=active", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/targets: %s", resp.Status)
	}
	var body struct {
		Data Targets `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode /api/v1/targets: %w", err)
	}
	return body.Data.ActiveTargets, nil
}

// shortestInterval is the shortest scrape interval of scfgs, which a
// share-of-interval --cluster.max-clock-offset is a share of; zero without
// jobs.
func shortestInterval(scfgs []*config.ScrapeConfig) time.Duration {
	var shortest time.Duration
	for _, sc := range scfgs {
		if iv := time.Duration(sc.ScrapeInterval); iv > 0 && (shortest == 0 || iv < shortest) {
			shortest = iv
		}
	}
	return shortest
}

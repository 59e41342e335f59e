package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/gossip"
)

// LoadReport is /api/v1/cluster/load: what the targets this agent scraped
// recently cost it, smoothed (scrape.TargetLoad). The leader reads every
// member's to plan placement.
type LoadReport struct {
	Name string `json:"name"`
	// Series and SamplesPerSecond sum the targets'.
	Series           float64      `json:"series"`
	SamplesPerSecond float64      `json:"samplesPerSecond"`
	Targets          []TargetLoad `json:"targets"`
	Generated        time.Time    `json:"generated"`
}

// TargetLoad is one target's smoothed cost.
type TargetLoad struct {
	// Key is the ownership key, hexadecimal.
	Key              string    `json:"key"`
	Series           float64   `json:"series"`
	SamplesPerSecond float64   `json:"samplesPerSecond"`
	LastScrape       time.Time `json:"lastScrape"`
}

func (a *Agent) loadReport() LoadReport {
	ls := a.scraper.Loads()
	r := LoadReport{Name: a.node.Name(), Targets: make([]TargetLoad, 0, len(ls)), Generated: a.node.Now()}
	for _, l := range ls {
		r.Series += l.Series
		r.SamplesPerSecond += l.SamplesPerSecond
		r.Targets = append(r.Targets, TargetLoad{Key: digestString(l.Key), Series: l.Series, SamplesPerSecond: l.SamplesPerSecond, LastScrape: l.LastScrape})
	}
	return r
}

func (w *webServer) apiLoad(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.loadReport())
}

// discoveredKeys returns the ownership keys of every target this agent
// discovers.
func (a *Agent) discoveredKeys() map[uint64]bool {
	out := map[uint64]bool{}
	for _, j := range a.scraper.Filter().Discovered() {
		for _, k := range j.Keys {
			out[k] = true
		}
	}
	return out
}

// loadSample is one target's cost as a member reported it.
type loadSample struct {
	key              uint64
	series, perSec   float64
	lastScrape, seen time.Time
	member           string
}

// samples decodes the report's targets; a malformed key fails the report.
func (r LoadReport) samples(seen time.Time) ([]loadSample, error) {
	out := make([]loadSample, 0, len(r.Targets))
	for _, t := range r.Targets {
		k, err := strconv.ParseUint(t.Key, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("target key %q: %w", t.Key, err)
		}
		if t.Series < 0 || t.Series > maxTargetSeries || t.SamplesPerSecond < 0 {
			return nil, fmt.Errorf("target %s: series must be in [0, %g] and samples/s not negative, got %v and %v", t.Key, float64(maxTargetSeries), t.Series, t.SamplesPerSecond)
		}
		out = append(out, loadSample{key: k, series: t.Series, perSec: t.SamplesPerSecond, lastScrape: t.LastScrape, seen: seen, member: r.Name})
	}
	return out, nil
}

// maxTargetSeries bounds what a member may claim one target costs (the
// planner's own bound).
const maxTargetSeries = 1e9

// maxLoadReport bounds a peer's answer: about 120 bytes per target, for a
// million targets.
const maxLoadReport = 128 << 20

// fetchLoad reads a peer's /api/v1/cluster/load. addr is host:port, checked
// by gossip; only shoal's own path is added.
func fetchLoad(ctx context.Context, c *http.Client, addr string) (LoadReport, error) {
	var env struct {
		Data LoadReport `json:"data"`
	}
	if err := getPeerJSON(ctx, c, addr, "/api/v1/cluster/load", maxLoadReport, &env); err != nil {
		return LoadReport{}, err
	}
	return env.Data, nil
}

// getPeerJSON GETs shoal's own path (with an optional query) on a peer and
// decodes its JSON answer. addr must be the host:port the peer advertises
// in gossip and nothing else (gossip.ValidateHTTPAddr; gossip refuses other
// metadata, this is the second line); c must not follow redirects
// (newPeerClient), so that neither the address nor the path can be changed
// by the peer's answer.
func getPeerJSON(ctx context.Context, c *http.Client, addr, pathQuery string, limit int64, dst any) error {
	if err := gossip.ValidateHTTPAddr(addr); err != nil {
		return fmt.Errorf("peer http address %q: %w", addr, err)
	}
	path, query, _ := strings.Cut(pathQuery, "?")
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: query}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(dst); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

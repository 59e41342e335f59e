package scrape

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

// What a target costs this agent, measured where its samples pass: the
// fence counts the samples of every scrape it keeps (staleness markers
// aside), which is the number of series the target exposes plus the scrape
// engine's report series (up, scrape_duration_seconds, ...). The counts are
// smoothed with an exponentially weighted moving average over loadTau, so
// that a scrape that returns a few more or fewer series moves nothing: the
// planner compares smoothed loads against a 10 % bound.
const (
	// loadTau is the EWMA's time constant: a step in a target's size is
	// 63 % reflected after loadTau, 95 % after three.
	loadTau = time.Minute
	// loadRecent is how many scrape intervals a target counts as scraped by
	// this agent after its last kept scrape: one missed scrape is not a move.
	loadRecent = 3
	// loadForget drops a target not scraped for this long.
	loadForget = 10 * time.Minute
)

// TargetLoad is one target's smoothed cost on this agent.
type TargetLoad struct {
	// Key is the target's ownership key.
	Key uint64
	// Series is the smoothed number of samples per kept scrape.
	Series float64
	// SamplesPerSecond is Series over the scrape interval.
	SamplesPerSecond float64
	// Scrapes counts the kept scrapes measured, LastScrape is the latest.
	Scrapes    uint64
	LastScrape time.Time
	// Interval is the target's scrape interval.
	Interval time.Duration
}

// loads is the per-target account, safe for concurrent use.
type loads struct {
	mu sync.Mutex
	m  map[uint64]*TargetLoad
}

func newLoads() *loads { return &loads{m: map[uint64]*TargetLoad{}} }

// observe records a kept scrape of key with n samples at t (the scrape's
// timestamp) for a target scraped every iv.
func (l *loads) observe(key uint64, n int, iv time.Duration, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok {
		e = &TargetLoad{Key: key, Series: float64(n)}
		l.m[key] = e
	} else if dt := t.Sub(e.LastScrape); dt > 0 {
		// Per elapsed time, not per scrape, so that targets with different
		// intervals smooth alike; a scrape replayed out of order only sets
		// the latest value.
		alpha := 1 - math.Exp(-dt.Seconds()/loadTau.Seconds())
		e.Series += alpha * (float64(n) - e.Series)
	}
	e.Scrapes++
	if t.After(e.LastScrape) {
		e.LastScrape = t
	}
	e.Interval = iv
	if iv > 0 {
		e.SamplesPerSecond = e.Series / iv.Seconds()
	}
}

// snapshot returns the targets scraped recently as of now, sorted by key,
// and forgets those not scraped for loadForget.
func (l *loads) snapshot(now time.Time) []TargetLoad {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]TargetLoad, 0, len(l.m))
	for k, e := range l.m {
		age := now.Sub(e.LastScrape)
		if age > loadForget {
			delete(l.m, k)
			continue
		}
		if recent := loadRecent * max(e.Interval, time.Second); age <= recent {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b TargetLoad) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Loads returns the smoothed cost of every target this agent scraped
// recently (within three scrape intervals), sorted by key.
func (m *Manager) Loads() []TargetLoad { return m.fence.loads.snapshot(m.fence.now()) }

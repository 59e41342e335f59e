package delivery

import (
	"sync"
	"time"
)

// activeWindow is how long a source's last commit counts in Series: a
// target that stopped (moved to a peer, gone from discovery) stops counting
// after it, as the series cache's two GC rounds of 10 minutes did.
const activeWindow = 10 * time.Minute

// activeSeries counts the series of each source's latest commit; a source
// is the scrape target a commit comes from (one commit per scrape), so the
// sum is the series this agent scrapes, kept without any state per series.
type activeSeries struct {
	mu sync.Mutex
	// bySource is keyed by the *scrape.Target of the appender's context,
	// or nil for appenders without one (they share an entry).
	bySource map[any]activeCommit
}

type activeCommit struct {
	series int
	at     time.Time
}

// commit records the number of series appended by a commit of source.
func (s *activeSeries) commit(source any, series int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySource == nil {
		s.bySource = map[any]activeCommit{}
	}
	s.bySource[source] = activeCommit{series: series, at: now}
}

// count is the series of the sources that committed within activeWindow
// before now; it forgets the others.
func (s *activeSeries) count(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for src, c := range s.bySource {
		if now.Sub(c.at) > activeWindow {
			delete(s.bySource, src)
			continue
		}
		n += c.series
	}
	return n
}

package agent

import (
	"cmp"
	"slices"
	"time"

	promscrape "github.com/prometheus/prometheus/scrape"
)

// pageHealth is the page's target health section: the targets this agent
// scrapes, as Prometheus' targets page shows them, per job.
type pageHealth struct {
	Up, Down, Unknown int
	Jobs              []pageHealthJob
}

// pageHealthJob is one job's scraped targets: the down ones first, at most
// pageMaxTargetsPerJob rows.
type pageHealthJob struct {
	Name              string
	Up, Down, Unknown int
	Targets           []pageHealthTarget
	Hidden            int
}

// pageHealthTarget is one scraped target's row.
type pageHealthTarget struct {
	URL    string
	Health string // up, down or unknown (not scraped yet)
	// LastScrape is when it was last scraped, Ago how long before the
	// page; zero and "never" before the first scrape.
	LastScrape time.Time
	Ago        string
	Duration   string // of the last scrape, "" before the first
	Error      string
}

// healthOrder puts down targets first, then those not scraped yet.
func healthOrder(h string) int {
	switch h {
	case string(promscrape.HealthBad):
		return 0
	case string(promscrape.HealthUnknown):
		return 1
	}
	return 2
}

// pageHealth groups ts (this agent's active targets, URLs and errors
// already masked) by job, down first, at most limit rows per job.
func newPageHealth(now time.Time, ts []Target, limit int) pageHealth {
	byJob := map[string][]pageHealthTarget{}
	for _, t := range ts {
		h := pageHealthTarget{URL: t.ScrapeURL, Health: string(t.Health), Error: t.LastError, Ago: "never"}
		if h.Health == "" {
			h.Health = string(promscrape.HealthUnknown)
		}
		if !t.LastScrape.IsZero() {
			h.LastScrape, h.Ago = t.LastScrape, ageString(now, t.LastScrape)+" ago"
			h.Duration = scrapeDuration(time.Duration(t.LastScrapeDuration * float64(time.Second)))
		}
		byJob[t.ScrapePool] = append(byJob[t.ScrapePool], h)
	}
	var out pageHealth
	for name, list := range byJob {
		slices.SortFunc(list, func(x, y pageHealthTarget) int {
			return cmp.Or(cmp.Compare(healthOrder(x.Health), healthOrder(y.Health)), cmp.Compare(x.URL, y.URL))
		})
		j := pageHealthJob{Name: name}
		for _, t := range list {
			switch t.Health {
			case string(promscrape.HealthGood):
				j.Up++
			case string(promscrape.HealthBad):
				j.Down++
			default:
				j.Unknown++
			}
		}
		j.Targets = list[:min(len(list), limit)]
		j.Hidden = len(list) - len(j.Targets)
		out.Up, out.Down, out.Unknown = out.Up+j.Up, out.Down+j.Down, out.Unknown+j.Unknown
		out.Jobs = append(out.Jobs, j)
	}
	// Jobs with a down target first, then by name.
	slices.SortFunc(out.Jobs, func(x, y pageHealthJob) int {
		return cmp.Or(cmp.Compare(min(y.Down, 1), min(x.Down, 1)), cmp.Compare(x.Name, y.Name))
	})
	return out
}

// Total is how many targets this agent scrapes.
func (h pageHealth) Total() int { return h.Up + h.Down + h.Unknown }

// scrapeDuration formats a scrape's duration: "850µs", "12.3ms", "1.204s".
func scrapeDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

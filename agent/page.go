package agent

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/gossip"
)

const (
	// pagePeerTimeout bounds the fetch of each peer's figures, so that the
	// page renders promptly while a peer is down; an unreachable peer's
	// figures show as "?".
	pagePeerTimeout = 300 * time.Millisecond
	// pageMaxTargetsPerJob caps the rows listed per job: a page over a fleet
	// of thousands stays small and fast. The API lists them all.
	pageMaxTargetsPerJob = 200
	// pageMoves is how many recent ownership moves the page lists, about one
	// scale event's worth on a mid-sized fleet.
	pageMoves = 50
	// pagePeerBodyLimit bounds what is read from a peer's self endpoint; its
	// answer is a few hundred bytes.
	pagePeerBodyLimit = 64 << 10
)

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"join":  func(s []string) string { return strings.Join(s, ",") },
	"num":   func(n int) string { return thousands(int64(n)) },
	"svg":   svgNum,
	"add":   func(a, b int) int { return a + b },
	"add13": func(y float64) float64 { return y + barsBarH },
}).ParseFS(pageFS, "page.html"))

// peerClient fetches peers' figures. Connections are not kept alive: the page
// is rendered rarely, and idle connections would outlive the request. It does
// not follow redirects: a peer answering with one could otherwise send this
// agent anywhere, not only to peers' /api/ paths.
var peerClient = func() *http.Client {
	c := newPeerClient(0)
	c.Transport = &http.Transport{DisableKeepAlives: true}
	return c
}()

// pageData is everything the status page renders. It is computed once per
// request, so the template does no work and unit tests can fabricate it.
type pageData struct {
	Name     string
	Version  string
	Ready    bool
	NotReady string // why not ready, empty when ready
	Digest   string
	Replicas int
	RingSize int
	Agree    bool
	Disagree []string
	// Discovery is every peer that discovers other targets, or runs
	// another scrape configuration, than this agent.
	Discovery []pageDifference
	Generated time.Time
	Gossip    pageGossip
	// Clock is this agent's clock against the cluster's.
	Clock pageClock
	// Consul is the agent's Consul registration; nil without one.
	Consul *pageConsul

	Members []pageMember

	Discovered int // distinct targets over all jobs
	Owned      int // of which this agent scrapes
	Jobs       []pageJob

	Moves      []pageMove
	MovesTotal uint64

	// Delivery is the remote_write queues, the disk and the charts.
	Delivery pageDelivery
	// Health is the targets this agent scrapes, by job.
	Health pageHealth
	// Placement is the leader, the plan and the balance of series.
	Placement pagePlacement
	// Quarantined are the targets held in quarantine now.
	Quarantined []pageQuarantined
}

// pageQuarantined is one held target as the banner lists it.
type pageQuarantined struct {
	Job, URL, Key string
	Until         string // "14:05:09 UTC (in 4m51s)"
	Level         int
	FailedOwners  string // "a, b"; empty when learned from a peer
}

func newPageQuarantined(held []QuarantinedTarget, now time.Time) []pageQuarantined {
	out := make([]pageQuarantined, 0, len(held))
	for _, h := range held {
		out = append(out, pageQuarantined{Job: h.Job, URL: h.URL, Key: h.Key, Level: h.Level, FailedOwners: strings.Join(h.FailedOwners, ", "),
			Until: fmt.Sprintf("%s (in %s)", h.Until.UTC().Format("15:04:05 MST"), h.Until.Sub(now).Round(time.Second))})
	}
	return out
}

// pageDifference is one peer whose discovery differs, as the banner names
// it: "b: job api 20 there, 0 here".
type pageDifference struct {
	Member string
	Config bool
	Jobs   string // "api: 20 there, 0 here; db: ..."
	Error  string
}

func newPageDifferences(diffs []Difference) []pageDifference {
	var out []pageDifference
	for _, x := range diffs {
		jobs := make([]string, 0, len(x.Jobs))
		for _, j := range x.Jobs {
			jobs = append(jobs, fmt.Sprintf("%s: %s there, %s here", j.Job, thousands(int64(j.Peer)), thousands(int64(j.Local))))
		}
		out = append(out, pageDifference{Member: x.Member, Config: x.Config, Jobs: strings.Join(jobs, "; "), Error: x.Error})
	}
	return out
}

// pageConsul is the agent's Consul registration as the page shows it.
type pageConsul struct {
	ConsulRegistration
	Since string // how long it has been failing
}

// pageGossip is how this agent's gossip is protected.
type pageGossip struct {
	Encrypted bool
	Insecure  bool // --cluster.insecure and no key
	Keys      int
	Encrypts  string // fingerprint of the key that encrypts
}

func newPageGossip(s gossip.Security) pageGossip {
	g := pageGossip{Encrypted: s.Encrypted, Insecure: s.Insecure, Keys: s.Keys}
	if len(s.Fingerprints) > 0 {
		g.Encrypts = s.Fingerprints[0]
	}
	return g
}

// pageMember is one row of the members table.
type pageMember struct {
	Name    string
	Self    bool
	URL     string // its status page; empty if it advertises no HTTP address
	Addr    string // gossip address
	State   string
	Version string
	Age     string
	Owned   int
	Series  string // active series, "?" when its figures could not be fetched
	Digest  string
	Agrees  bool
	// Clock is the member's clock offset to this agent's ("+1.2s ±0.3ms"),
	// empty for this agent and for a member not measured yet.
	Clock string
}

// pageClock is this agent's clock as the page shows it.
type pageClock struct {
	InBound bool
	Offset  string // e.g. "-5.002s"
	Bound   string
	Peers   int
	Reason  string
}

func newPageClock(st gossip.ClockStatus) pageClock {
	return pageClock{InBound: st.InBound, Offset: signed(st.Offset), Bound: st.Bound.String(), Peers: st.Measured, Reason: st.Reason()}
}

// signed formats d with its sign, to the millisecond.
func signed(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// pageJob is one scrape job's section of the targets.
type pageJob struct {
	Name    string
	Total   int
	Owned   int // by this agent
	Targets []pageTarget
	Hidden  int // rows not listed because of pageMaxTargetsPerJob
}

// pageTarget is one discovered target and its owners in the local view.
type pageTarget struct {
	Job    string
	URL    string
	Owners []string
	Mine   bool
	// Error is the last scrape error of a target this agent scrapes (a
	// limit exceeded, a refused connection); empty when healthy.
	Error string
}

// pageMove is one ownership move as the page prints it.
type pageMove struct {
	Time   time.Time
	Ago    string
	Job    string
	URL    string
	From   []string
	To     []string
	Reason string
	Mine   bool // to or from this agent
}

func (w *webServer) page(rw http.ResponseWriter, r *http.Request) {
	d := w.a.pageData(r.Context())
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(rw, d); err != nil {
		w.a.logger.Warn("rendering status page", "err", err)
	}
}

// pageData gathers the page's figures: membership and placement from the
// local ownership view, and each peer's active series over HTTP.
func (a *Agent) pageData(ctx context.Context) pageData {
	now := a.node.Now()
	// One view for the members and the targets, so their figures agree.
	v := a.node.View()
	m := a.clusterMembers(v)
	d := pageData{
		Name:      m.Self,
		Version:   a.opts.Version,
		Ready:     a.Ready(),
		Digest:    m.Digest,
		Replicas:  m.Replicas,
		RingSize:  m.RingSize,
		Agree:     m.Agree,
		Disagree:  m.Disagree,
		Generated: now,
		Gossip:    newPageGossip(a.node.Security()),
		Clock:     newPageClock(a.node.ClockStatus()),
	}
	if !d.Ready {
		d.NotReady = a.notReadyReason()
	}
	d.Discovery = newPageDifferences(m.Discovery)
	d.Quarantined = newPageQuarantined(a.quar.quarantined(), d.Generated)
	if c := a.consulRegistration(); c != nil {
		d.Consul = &pageConsul{ConsulRegistration: *c, Since: ageString(now, c.FailingSince)}
	}

	for _, p := range m.Members {
		d.Members = append(d.Members, pageMember{
			Name:    p.Name,
			Self:    p.Self,
			URL:     memberURL(p.HTTPAddr),
			Addr:    p.Addr,
			State:   p.State,
			Version: p.Version,
			Age:     ageString(now, p.Started),
			Owned:   p.OwnedTargets,
			Digest:  p.Digest,
			Agrees:  p.Agrees,
			Clock:   memberClock(p),
		})
	}
	slices.SortFunc(d.Members, func(x, y pageMember) int { return cmp.Compare(x.Name, y.Name) })
	fetchSeries(ctx, peerClient, d.Members, a.activeSeries())

	active := a.activeTargets()
	d.Health = newPageHealth(now, active, pageMaxTargetsPerJob)
	d.Delivery = a.pageDelivery(now)
	d.Placement = a.pagePlacement(ctx, now)
	scrapeErrs := map[[2]string]string{}
	for _, t := range active {
		if t.LastError != "" {
			scrapeErrs[[2]string{t.ScrapePool, t.ScrapeURL}] = t.LastError
		}
	}
	var ts []pageTarget
	for _, t := range a.scraper.Filter().Targets() {
		owners := v.Owners(nil, t.Key)
		ts = append(ts, pageTarget{Job: t.Job, URL: a.showURL(t.URL), Owners: owners, Mine: slices.Contains(owners, d.Name), Error: a.showURL(scrapeErrs[[2]string{t.Job, t.URL}])})
	}
	d.Jobs, d.Discovered, d.Owned = groupTargets(ts, pageMaxTargetsPerJob)

	moves, total := a.moves.recent(pageMoves)
	d.MovesTotal = total
	for _, mv := range moves {
		d.Moves = append(d.Moves, pageMove{
			Time: mv.Time, Ago: ageString(now, mv.Time), Job: mv.Job, URL: a.showURL(mv.URL),
			From: mv.From, To: mv.To, Reason: mv.Reason,
			Mine: slices.Contains(mv.From, d.Name) || slices.Contains(mv.To, d.Name),
		})
	}
	return d
}

// groupTargets sorts targets into jobs, each listing this agent's targets
// first and then by URL, at most limit rows per job. It returns the jobs in
// name order and the totals over all jobs.
func groupTargets(ts []pageTarget, limit int) (jobs []pageJob, total, owned int) {
	byJob := map[string][]pageTarget{}
	for _, t := range ts {
		byJob[t.Job] = append(byJob[t.Job], t)
	}
	for name, list := range byJob {
		slices.SortFunc(list, func(x, y pageTarget) int {
			if x.Mine != y.Mine {
				if x.Mine {
					return -1
				}
				return 1
			}
			return cmp.Compare(x.URL, y.URL)
		})
		j := pageJob{Name: name, Total: len(list)}
		for _, t := range list {
			if t.Mine {
				j.Owned++
			}
		}
		j.Targets = list[:min(len(list), limit)]
		j.Hidden = len(list) - len(j.Targets)
		jobs = append(jobs, j)
		total += j.Total
		owned += j.Owned
	}
	slices.SortFunc(jobs, func(x, y pageJob) int { return cmp.Compare(x.Name, y.Name) })
	return jobs, total, owned
}

// fetchSeries fills in each member's active series: this agent's from local,
// every peer's from its /api/v1/cluster/self, concurrently, each within
// pagePeerTimeout. It returns when every fetch has answered or timed out.
func fetchSeries(ctx context.Context, c *http.Client, members []pageMember, local int64) {
	var wg sync.WaitGroup
	for i := range members {
		m := &members[i]
		if m.Self {
			m.Series = seriesString(local)
			continue
		}
		m.Series = "?"
		if m.URL == "" {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, pagePeerTimeout)
			defer cancel()
			if s, err := peerSelf(ctx, c, m.URL+"api/v1/cluster/self"); err == nil && s.Name == m.Name {
				m.Series = seriesString(s.ActiveSeries)
			}
		})
	}
	wg.Wait()
}

func peerSelf(ctx context.Context, c *http.Client, url string) (Self, error) {
	var s Self
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return s, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	env := Response{Data: &s}
	if err := json.NewDecoder(io.LimitReader(resp.Body, pagePeerBodyLimit)).Decode(&env); err != nil {
		return s, fmt.Errorf("decode %s: %w", url, err)
	}
	return s, nil
}

// memberURL is the base URL, ending in "/", of a member's status page, to
// which only shoal's own paths are appended. The advertised address must be
// host:port and nothing else (gossip refuses other metadata); anything else
// gives "", no link and no request.
func memberURL(httpAddr string) string {
	if httpAddr == "" || gossip.ValidateHTTPAddr(httpAddr) != nil {
		return ""
	}
	return (&url.URL{Scheme: "http", Host: httpAddr, Path: "/"}).String()
}

func seriesString(n int64) string {
	if n < 0 {
		return "?"
	}
	return thousands(n)
}

// thousands formats n with comma separators: 1234567 -> "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ageString is the time from t to now in at most two units: "45s", "12m3s",
// "3h4m", "2d5h"; "-" when t is unknown.
func ageString(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return spanString(max(now.Sub(t), 0))
}

// spanString is d in at most two units, truncated to the second: "45s",
// "12m3s", "3h4m", "2d5h".
func spanString(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// memberClock formats a member's measured clock offset; empty when there is
// none.
func memberClock(m Member) string {
	if m.Self || m.ClockSamples == 0 {
		return ""
	}
	off := time.Duration(m.ClockOffsetSeconds * float64(time.Second))
	unc := time.Duration(m.ClockUncertaintySeconds * float64(time.Second))
	return signed(off) + " ±" + unc.Round(time.Microsecond).String()
}

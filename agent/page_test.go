package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/shoal-dev/shoal/gossip"
)

// Environment variables of the status page's browser test.
const (
	// pageEnvChromium names the Chromium (or Chrome) binary, overriding the
	// search in $PATH.
	pageEnvChromium = "SHOAL_CHROMIUM_BIN"
	// pageEnvScreenshot, when set, is a path where the browser test also
	// saves a PNG of the page, for a human to look at.
	pageEnvScreenshot = "SHOAL_PAGE_SCREENSHOT"
	// pageEnvRequire set to "1" turns a missing browser into a failure, as
	// for the other integration tests (internal/testenv).
	pageEnvRequire = "SHOAL_REQUIRE_INTEGRATION"
)

// pageFixture is a page of two members, one job and one move.
func pageFixture() pageData {
	now := time.Date(2025, 3, 4, 10, 11, 12, 0, time.UTC)
	return pageData{
		Name: "node-1", Version: "1.2.3", Ready: true, Digest: "00000000000000ab",
		Replicas: 2, RingSize: 2, Agree: true, Disagree: []string{}, Generated: now,
		Clock: pageClock{InBound: true, Offset: "+1ms", Bound: "500ms", Peers: 1},
		Members: []pageMember{
			{Name: "node-1", Self: true, URL: "http://10.0.0.1:9090/", Addr: "10.0.0.1:7946", State: "active",
				Version: "1.2.3", Age: "3h4m", Owned: 3, Series: "12,345", Digest: "00000000000000ab", Agrees: true},
			{Name: "node-2", URL: "http://10.0.0.2:9090/", Addr: "10.0.0.2:7946", State: "joining",
				Version: "1.2.3", Age: "5s", Owned: 0, Series: "?", Digest: "00000000000000cd", Agrees: false, Clock: "-1ms ±120µs"},
		},
		Discovered: 3, Owned: 2,
		Jobs: []pageJob{{Name: "node", Total: 3, Owned: 2, Hidden: 1, Targets: []pageTarget{
			{Job: "node", URL: "http://a:9100/metrics", Owners: []string{"node-1", "node-2"}, Mine: true},
			{Job: "node", URL: "http://b:9100/metrics", Owners: []string{"node-2"}},
		}}},
		Moves: []pageMove{{Time: now.Add(-time.Minute), Ago: "1m0s", Job: "node", URL: "http://b:9100/metrics",
			From: []string{"node-1"}, To: []string{"node-2"}, Reason: "node-2 joined (active)"}},
		MovesTotal: 7,
		Delivery:   fixtureDelivery(now),
		Health:     fixtureHealth(now, 3),
	}
}

// checkPageAgreeing checks the page of pageFixture.
func checkPageAgreeing(t *testing.T, doc *html.Node) {
	t.Helper()
	require.Equal(t, "node-1", pageText(pageByID(t, doc, "node-name")))
	require.Equal(t, "1.2.3", pageText(pageByID(t, doc, "version")))
	require.Equal(t, "00000000000000ab", pageText(pageByID(t, doc, "ring-digest")))
	require.Equal(t, "2", pageText(pageByID(t, doc, "replication-factor")))
	require.Equal(t, "true", pageAttr(pageByID(t, doc, "ready"), "data-ready"))
	agreement := pageByID(t, doc, "agreement")
	require.Equal(t, "true", pageAttr(agreement, "data-agree"))
	require.Contains(t, pageText(agreement), "Agrees with all peers")

	rows := pageFind(doc, "tr", "member")
	require.Len(t, rows, 2)
	require.Equal(t, "node-1", pageAttr(rows[0], "data-name"))
	require.Equal(t, "active", pageAttr(rows[0], "data-state"))
	require.True(t, pageHasClass(rows[0], "self"))
	require.Equal(t, "12,345", pageText(pageFind(rows[0], "td", "series")[0]))
	require.Equal(t, "3", pageText(pageFind(rows[0], "td", "owned")[0]))
	require.Equal(t, "http://10.0.0.2:9090/", pageAttr(pageFind(rows[1], "a", "")[0], "href"))
	require.Equal(t, "joining", pageAttr(rows[1], "data-state"))
	require.Equal(t, "?", pageText(pageFind(rows[1], "td", "series")[0]))
	require.Contains(t, pageText(pageFind(rows[1], "td", "digest")[0]), "differs")

	jobs := pageFind(doc, "section", "job")
	require.Len(t, jobs, 1)
	require.Equal(t, "node", pageAttr(jobs[0], "data-job"))
	targets := pageFind(jobs[0], "tr", "target")
	require.Len(t, targets, 2)
	require.True(t, pageHasClass(targets[0], "mine"))
	require.False(t, pageHasClass(targets[1], "mine"))
	require.Equal(t, "node-1,node-2", pageAttr(targets[0], "data-owners"))
	self := pageFind(targets[0], "span", "self")
	require.Len(t, self, 1)
	require.Equal(t, "node-1", pageText(self[0]))
	hidden := pageFind(jobs[0], "p", "hidden-count")
	require.Len(t, hidden, 1)
	require.Contains(t, pageText(hidden[0]), "1 more not shown")

	moves := pageFind(pageByID(t, doc, "moves"), "tr", "move")
	require.Len(t, moves, 1)
	require.Contains(t, pageText(moves[0]), "node-1→node-2")
	require.Contains(t, pageText(moves[0]), "node-2 joined (active)")
	require.Nil(t, pageFindID(doc, "moves-empty"))
	require.Nil(t, pageFindID(doc, "targets-empty"))
}

func TestPageTemplate(t *testing.T) {
	base := pageFixture()
	t.Run("agreeing and ready", func(t *testing.T) {
		checkPageAgreeing(t, pageRender(t, base))
	})

	t.Run("disagreeing, not ready, empty", func(t *testing.T) {
		d := base
		d.Ready, d.NotReady = false, "not joined the cluster yet"
		d.Agree, d.Disagree = false, []string{"node-2", "node-3"}
		d.Jobs, d.Discovered, d.Owned = nil, 0, 0
		d.Moves, d.MovesTotal = nil, 0
		doc := pageRender(t, d)
		require.Equal(t, "false", pageAttr(pageByID(t, doc, "ready"), "data-ready"))
		require.Equal(t, "not joined the cluster yet", pageText(pageByID(t, doc, "not-ready-reason")))
		agreement := pageByID(t, doc, "agreement")
		require.Equal(t, "false", pageAttr(agreement, "data-agree"))
		require.Contains(t, pageText(agreement), "Disagrees with: node-2, node-3")
		require.NotNil(t, pageFindID(doc, "targets-empty"))
		require.NotNil(t, pageFindID(doc, "moves-empty"))
		require.Nil(t, pageFindID(doc, "moves"))
		require.Empty(t, pageFind(doc, "section", "job"))
	})

	t.Run("escapes", func(t *testing.T) {
		d := base
		d.Name = `<script>alert(1)</script>`
		var buf bytes.Buffer
		require.NoError(t, pageTmpl.Execute(&buf, d))
		require.NotContains(t, buf.String(), "<script>")
	})
}

func TestPageGossipSecurity(t *testing.T) {
	d := pageFixture()
	d.Gossip = pageGossip{Insecure: true}
	doc := pageRender(t, d)
	require.Contains(t, pageText(pageByID(t, doc, "gossip-insecure")), "Gossip is not authenticated (--cluster.insecure)")
	require.Contains(t, pageText(pageByID(t, doc, "gossip-security")), "not authenticated")

	d.Gossip = pageGossip{Encrypted: true, Keys: 2, Encrypts: "1a2b3c4d"}
	doc = pageRender(t, d)
	require.Nil(t, pageFindID(doc, "gossip-insecure"))
	require.Equal(t, "encrypted, 2 keys, encrypts with 1a2b3c4d", pageText(pageByID(t, doc, "gossip-security")))

	d.Gossip = pageGossip{}
	doc = pageRender(t, d)
	require.Nil(t, pageFindID(doc, "gossip-insecure"))
	require.Equal(t, "not encrypted (loopback only)", pageText(pageByID(t, doc, "gossip-security")))
}

func TestPageClock(t *testing.T) {
	d := pageFixture()
	doc := pageRender(t, d)
	require.Nil(t, pageFindID(doc, "clock-out-of-bound"))
	require.Equal(t, "+1ms from the cluster's (1 peer), bound 500ms", pageText(pageByID(t, doc, "clock")))
	var clocks []string
	for _, td := range pageFind(doc, "td", "clock") {
		clocks = append(clocks, pageText(td))
	}
	require.Equal(t, []string{"–", "-1ms ±120µs"}, clocks, "this node has none, its peer its offset")

	st := gossip.ClockStatus{Offset: -5 * time.Second, Uncertainty: 80 * time.Microsecond, Bound: 500 * time.Millisecond, Reference: 2, Measured: 2}
	d.Clock = newPageClock(st)
	d.Ready, d.NotReady = false, st.Reason()
	doc = pageRender(t, d)
	banner := pageByID(t, doc, "clock-out-of-bound")
	require.Equal(t, "-5s", pageAttr(banner, "data-offset"))
	require.Contains(t, pageText(banner), "Clock -5s off the cluster's, over --cluster.max-clock-offset 500ms")
	require.Contains(t, pageText(banner), "this agent's clock is 5s behind the cluster's (median of 2 peers, ±80µs), more than --cluster.max-clock-offset 500ms: fix its time synchronisation (NTP")
	require.Equal(t, "false", pageAttr(pageByID(t, doc, "clock"), "data-in-bound"))
	require.Contains(t, pageText(pageByID(t, doc, "not-ready-reason")), "it takes no targets over until back in bound")

	require.Equal(t, "+1.5s ±250µs", memberClock(Member{ClockOffsetSeconds: 1.5, ClockUncertaintySeconds: 0.00025, ClockSamples: 3}))
	require.Empty(t, memberClock(Member{ClockOffsetSeconds: 1.5}), "not measured")
	require.Empty(t, memberClock(Member{Self: true, ClockSamples: 3}))
}

// TestPeerFetchStaysOnPeers: a peer answering the page's request with a
// redirect cannot send this agent elsewhere.
func TestPeerFetchStaysOnPeers(t *testing.T) {
	var elsewhere atomic.Int64
	victim := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer victim.Close()
	var paths []string
	var mu sync.Mutex
	peer := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		http.Redirect(rw, r, victim.URL+"/internal", http.StatusFound)
	}))
	defer peer.Close()
	members := []pageMember{{Name: "peer", URL: memberURL(peer.Listener.Addr().String())}}
	fetchSeries(context.Background(), peerClient, members, 0)
	require.Equal(t, "?", members[0].Series)
	require.Zero(t, elsewhere.Load(), "the redirect was not followed")
	require.Equal(t, []string{"/api/v1/cluster/self"}, paths)
}

func TestGroupTargets(t *testing.T) {
	var ts []pageTarget
	for i := range 5 {
		ts = append(ts, pageTarget{Job: "b", URL: fmt.Sprintf("http://b%d/", i), Mine: i%2 == 1})
	}
	ts = append(ts, pageTarget{Job: "a", URL: "http://a/"})

	jobs, total, owned := groupTargets(ts, 3)
	require.Equal(t, 6, total)
	require.Equal(t, 2, owned)
	require.Len(t, jobs, 2)
	require.Equal(t, "a", jobs[0].Name)
	require.Equal(t, 1, jobs[0].Total)
	require.Zero(t, jobs[0].Hidden)
	b := jobs[1]
	require.Equal(t, 5, b.Total)
	require.Equal(t, 2, b.Owned)
	require.Equal(t, 2, b.Hidden)
	var urls []string
	for _, t := range b.Targets {
		urls = append(urls, t.URL)
	}
	// This agent's targets first, then by URL.
	require.Equal(t, []string{"http://b1/", "http://b3/", "http://b0/"}, urls)

	jobs, total, owned = groupTargets(nil, 3)
	require.Empty(t, jobs)
	require.Zero(t, total)
	require.Zero(t, owned)
}

func TestFetchSeries(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/cluster/self" {
			http.NotFound(rw, r)
			return
		}
		writeJSON(rw, Self{Name: "good", ActiveSeries: 1234567})
	}))
	defer good.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "boom", http.StatusInternalServerError)
	}))
	defer broken.Close()
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stop)

	members := []pageMember{
		{Name: "self", Self: true},
		{Name: "good", URL: memberURL(good.Listener.Addr().String())},
		{Name: "broken", URL: memberURL(broken.Listener.Addr().String())},
		{Name: "slow", URL: memberURL(slow.Listener.Addr().String())},
		{Name: "no-http"},
	}
	start := time.Now()
	fetchSeries(context.Background(), &http.Client{}, members, 42)
	require.Less(t, time.Since(start), 5*pagePeerTimeout, "peers are fetched concurrently with a timeout")
	got := map[string]string{}
	for _, m := range members {
		got[m.Name] = m.Series
	}
	require.Equal(t, map[string]string{"self": "42", "good": "1,234,567", "broken": "?", "slow": "?", "no-http": "?"}, got)
}

func TestPageFormatting(t *testing.T) {
	now := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"}, {45 * time.Second, "45s"}, {12*time.Minute + 3*time.Second, "12m3s"},
		{3*time.Hour + 4*time.Minute, "3h4m"}, {53 * time.Hour, "2d5h"}, {-time.Second, "0s"},
	} {
		require.Equal(t, tc.want, ageString(now, now.Add(-tc.ago)), tc.ago)
	}
	require.Equal(t, "-", ageString(now, time.Time{}))
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		require.Equal(t, want, thousands(n))
	}
	require.Equal(t, "?", seriesString(-1))
	require.Equal(t, "http://h:1/", memberURL("h:1"))
	require.Equal(t, "http://[::1]:9090/", memberURL("[::1]:9090"))
	require.Empty(t, memberURL(""))
	// Only host:port: a scheme, path, query or userinfo gives no URL at all.
	for _, bad := range []string{"https://h/x/", "127.0.0.1:9090/x?", "u@h:1", "h:1#x", "h"} {
		require.Empty(t, memberURL(bad), bad)
	}
}

// TestPageBrowser starts a real agent and checks the page as Chromium
// renders it: the DOM after parsing, not the template's output.
func TestPageBrowser(t *testing.T) {
	browser := pageChromium(t)
	const node = "page-node-1"
	a, base, targets := startPageAgent(t, node)
	require.Eventually(t, func() bool {
		return pageGetOK(base+"-/ready") && len(a.clusterTargets("farm").Targets) == len(targets)
	}, 20*time.Second, 50*time.Millisecond, "agent did not become ready with its targets")

	doc := pageDumpDOM(t, browser, base)

	require.Equal(t, node, pageText(pageByID(t, doc, "node-name")))
	require.Equal(t, "0.0.0-test", pageText(pageByID(t, doc, "version")))
	require.Equal(t, "true", pageAttr(pageByID(t, doc, "ready"), "data-ready"))
	require.Equal(t, "1", pageText(pageByID(t, doc, "replication-factor")))
	agreement := pageByID(t, doc, "agreement")
	require.Equal(t, "true", pageAttr(agreement, "data-agree"))
	require.Contains(t, pageText(agreement), "Agrees with all peers")

	checkBrowserSelf(t, doc, node, base)
	checkBrowserTargets(t, doc, node, targets)
	checkBrowserSections(t, doc)
	checkBrowserLayout(t, browser, base)

	if path := os.Getenv(pageEnvScreenshot); path != "" {
		pageScreenshot(t, browser, base, path)
	}
}

// pageAgentSetup adds to the page tests' agent.
type pageAgentSetup struct {
	// remoteWrite, when set, is a remote_write URL.
	remoteWrite string
	// downTargets are addresses in the job that nothing answers on.
	downTargets []string
	// historyStep, when set, replaces the page history's 15 s step.
	historyStep time.Duration
}

// startPageAgent runs a single agent named node that scrapes two loopback
// targets, until the test ends; it returns its status page's base URL and
// the targets' addresses.
func startPageAgent(t *testing.T, node string) (a *Agent, base string, targets []string) {
	return startPageAgentWith(t, node, pageAgentSetup{})
}

// startPageAgentWith is startPageAgent with the additions of setup; the
// down targets are not among those returned.
func startPageAgentWith(t *testing.T, node string, setup pageAgentSetup) (a *Agent, base string, targets []string) {
	t.Helper()
	for range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			_, _ = fmt.Fprintln(rw, "# TYPE up_test gauge\nup_test 1")
		}))
		t.Cleanup(srv.Close)
		targets = append(targets, srv.Listener.Addr().String())
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	all := "'" + strings.Join(append(slices.Clone(targets), setup.downTargets...), "', '") + "'"
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: farm\n    static_configs:\n      - targets: [%s]\n", all)
	if setup.remoteWrite != "" {
		cfg += fmt.Sprintf("remote_write:\n  - url: %s\n    name: receiver\n    queue_config: {batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 200ms}\n", setup.remoteWrite)
	}
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))

	webAddr := pageFreeAddr(t)
	o := DefaultOptions(node)
	o.ConfigFile = cfgFile
	o.Storage = StorageConfig{Path: filepath.Join(dir, "data"), FlushDeadline: time.Second}
	o.Web.ListenAddress = webAddr
	o.Gossip.ClusterName, o.Gossip.BindAddr = "page-test", "127.0.0.1:0"
	o.Gossip.RejoinInterval, o.Gossip.HandoffLead = 0, 0
	o.Stop.HandoffTimeout = time.Second
	o.Version = "0.0.0-test"
	a, err := New(o, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	if setup.historyStep > 0 {
		a.hist = newHistory(setup.historyStep, historyIntervals)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30s")
		}
	})
	return a, "http://" + webAddr + "/", targets
}

// checkBrowserSelf checks the members table of a single-node page.
func checkBrowserSelf(t *testing.T, doc *html.Node, node, base string) {
	t.Helper()
	members := pageFind(pageByID(t, doc, "members"), "tr", "member")
	require.Len(t, members, 1)
	self := members[0]
	require.Equal(t, node, pageAttr(self, "data-name"))
	require.Equal(t, "active", pageAttr(self, "data-state"))
	require.True(t, pageHasClass(self, "self"))
	require.Equal(t, base, pageAttr(pageFind(self, "a", "")[0], "href"))
	require.Equal(t, "2", pageText(pageFind(self, "td", "owned")[0]))
	require.NotEqual(t, "?", pageText(pageFind(self, "td", "series")[0]), "this node's series are read locally")
	require.Contains(t, pageText(pageFind(self, "td", "digest")[0]), "matches")
}

// checkBrowserTargets checks that the page lists targets, each owned by node.
func checkBrowserTargets(t *testing.T, doc *html.Node, node string, targets []string) {
	t.Helper()
	jobs := pageFind(pageByID(t, doc, "targets"), "section", "job")
	require.Len(t, jobs, 1)
	require.Equal(t, "farm", pageAttr(jobs[0], "data-job"))
	var urls []string
	for _, tr := range pageFind(jobs[0], "tr", "target") {
		urls = append(urls, pageAttr(tr, "data-url"))
		require.True(t, pageHasClass(tr, "mine"), "target %s is owned by this node", pageAttr(tr, "data-url"))
		owners := pageFind(tr, "span", "owner")
		require.Len(t, owners, 1)
		require.Equal(t, node, pageText(owners[0]))
		require.True(t, pageHasClass(owners[0], "self"))
	}
	slices.Sort(urls)
	want := []string{"http://" + targets[0] + "/metrics", "http://" + targets[1] + "/metrics"}
	slices.Sort(want)
	require.Equal(t, want, urls)
	require.Nil(t, pageFindID(doc, "targets-empty"))
	// A single node may or may not have recorded moves (its targets move to it
	// when it turns active, if discovery synced first); the section is there.
	require.True(t, pageFindID(doc, "moves") != nil || pageFindID(doc, "moves-empty") != nil)
}

// checkBrowserSections checks the delivery and health sections of an agent
// without remote_write that scrapes two targets.
func checkBrowserSections(t *testing.T, doc *html.Node) {
	t.Helper()
	require.NotNil(t, pageFindID(doc, "delivery-empty"), "no remote_write endpoint")
	for _, id := range []string{"chart-sent", "chart-moves"} {
		require.Len(t, pageFind(pageByID(t, doc, id), "svg", ""), 1, "the chart %s is drawn", id)
	}
	counts := pageByID(t, doc, "health-counts")
	require.Equal(t, "0", pageAttr(counts, "data-down"))
	up, unknown := attrFloat(counts, "data-up"), attrFloat(counts, "data-unknown")
	require.Equal(t, 2.0, up+unknown, "both targets are scraped here (or about to be)")
	jobs := pageFind(pageByID(t, doc, "health-section"), "section", "health-job")
	require.Len(t, jobs, 1)
	require.Len(t, pageFind(jobs[0], "tr", "health-target"), 2)
}

// checkBrowserLayout loads the agent's page, with the layout script added
// by a proxy, at every width of pageLayoutWidths: nothing overflows, the
// sections, the delivery table (or the note that there is no endpoint) and
// the charts are shown across the window; and takes a screenshot at each
// width (into a temporary directory, or $SHOAL_PAGE_SCREENSHOT's).
func checkBrowserLayout(t *testing.T, browser, base string) {
	t.Helper()
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		resp, err := http.Get(base)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = rw.Write([]byte(strings.Replace(string(body), "</body>", pageLayoutScript+"</body>", 1)))
	}))
	defer proxy.Close()
	for _, width := range pageLayoutWidths {
		l := pageMeasure(t, browser, proxy.URL+"/", width)
		require.Equal(t, width, l.ViewportWidth)
		require.Empty(t, l.Problems, "the agent's page at %d px", width)
		require.LessOrEqual(t, l.ScrollWidth, l.ViewportWidth, "the agent's page at %d px", width)
		requireShown(t, l, 0.9*float64(width)-40, pageSectionIDs...)
		table := "delivery"
		if _, ok := l.Sections[table]; !ok {
			table = "delivery-empty"
		}
		requireShown(t, l, 0.9*float64(width)-40, table)
		requireShown(t, l, 300, "chart-sent", "chart-moves")

		dir := t.TempDir()
		if p := os.Getenv(pageEnvScreenshot); p != "" {
			dir = filepath.Dir(p)
		}
		name := strings.NewReplacer("/", "-", ":", "-").Replace(t.Name())
		pageScreenshotAt(t, browser, base, filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width)), width, min(l.ScrollHeight, pageMaxScreenshotHeight))
	}
}

// pageChromium finds a headless-capable Chromium, or skips the test.
func pageChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	if p := pageLookChromium(t); p != "" {
		return p
	}
	msg := fmt.Sprintf("no chromium, chromium-browser or google-chrome in $PATH and $%s unset; install it with `apt-get install chromium`", pageEnvChromium)
	if os.Getenv(pageEnvRequire) == "1" {
		t.Fatal(msg + "; failing because " + pageEnvRequire + "=1")
	}
	t.Skip(msg)
	return ""
}

// pageLookChromium is $SHOAL_CHROMIUM_BIN or the first Chromium in $PATH,
// "" if there is none.
func pageLookChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(pageEnvChromium); p != "" {
		path, err := exec.LookPath(p)
		require.NoError(t, err, "$%s=%q", pageEnvChromium, p)
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// pageRunChromium runs a headless Chromium with its own profile directory
// and returns its standard output.
func pageRunChromium(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, browser, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s %s\nstderr:\n%s", browser, strings.Join(args, " "), stderr.String())
	return stdout.Bytes()
}

func pageDumpDOM(t *testing.T, browser, url string) *html.Node {
	t.Helper()
	out := pageRunChromium(t, browser, "--dump-dom", url)
	doc, err := html.Parse(bytes.NewReader(out))
	require.NoError(t, err)
	require.NotNil(t, pageFindID(doc, "node-name"), "dumped DOM is not the status page:\n%s", out)
	return doc
}

func pageScreenshot(t *testing.T, browser, url, path string) {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	pageRunChromium(t, browser, "--hide-scrollbars", "--window-size=1400,900", "--screenshot="+abs, url)
	t.Logf("status page screenshot saved to %s", abs)
}

func pageRender(t *testing.T, d pageData) *html.Node {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, pageTmpl.Execute(&buf, d))
	doc, err := html.Parse(&buf)
	require.NoError(t, err)
	return doc
}

// pageFreeAddr returns a loopback address with a port that was free a
// moment ago. The agent advertises its web address to peers, so it needs
// the real port up front, not :0.
func pageFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func pageGetOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// pageFind returns the elements named tag (any when empty) under n that have
// class (any when empty), in document order.
func pageFind(n *html.Node, tag, class string) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && (tag == "" || c.Data == tag) && (class == "" || pageHasClass(c, class)) {
			out = append(out, c)
		}
	}
	return out
}

func pageFindID(n *html.Node, id string) *html.Node {
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && pageAttr(c, "id") == id {
			return c
		}
	}
	return nil
}

func pageByID(t *testing.T, n *html.Node, id string) *html.Node {
	t.Helper()
	e := pageFindID(n, id)
	require.NotNil(t, e, "no element with id %q", id)
	return e
}

func pageAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func pageHasClass(n *html.Node, class string) bool {
	return slices.Contains(strings.Fields(pageAttr(n, "class")), class)
}

// pageText is n's text content with runs of white space collapsed.
func pageText(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestPageDiscoveryDiffers(t *testing.T) {
	d := pageFixture()
	require.Nil(t, pageFindID(pageRender(t, d), "discovery-differs"))
	d.Discovery = newPageDifferences([]Difference{
		{Member: "node-2", Targets: true, Jobs: []JobDifference{{Job: "api", Peer: 20, Local: 0}, {Job: "db", Peer: 3, Local: 4}}},
		{Member: "node-3", Config: true, Jobs: []JobDifference{}, Error: "GET /api/v1/cluster/discovery: 503"},
	})
	banner := pageText(pageByID(t, pageRender(t, d), "discovery-differs"))
	require.Contains(t, banner, "Discovery differs from 2 peers: node-2 (api: 20 there, 0 here; db: 3 there, 4 here); node-3 (another scrape configuration)")
	require.Contains(t, banner, "node-3's list cannot be read: GET /api/v1/cluster/discovery: 503")
}

func TestPageQuarantined(t *testing.T) {
	d := pageFixture()
	require.Nil(t, pageFindID(pageRender(t, d), "quarantined"))
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	d.Quarantined = newPageQuarantined([]QuarantinedTarget{
		{Job: "node", URL: "http://10.0.0.7:9100/metrics", Key: "00000000000000ab", Since: now.Add(-time.Minute), Until: now.Add(4 * time.Minute), Level: 1, FailedOwners: []string{"a", "b"}},
		{Job: "api", URL: "http://10.0.0.8:80/metrics", Key: "00000000000000cd", Since: now, Until: now.Add(90 * time.Second), Level: 3, FailedOwners: []string{}},
	}, now)
	banner := pageText(pageByID(t, pageRender(t, d), "quarantined"))
	require.Contains(t, banner, "2 targets held in quarantine, scraped by no agent: node http://10.0.0.7:9100/metrics until 14:04:00 UTC (in 4m0s) (died owning it: a, b); api http://10.0.0.8:80/metrics until 14:01:30 UTC (in 1m30s), hold 3")
	require.Contains(t, banner, "/api/v1/cluster/quarantine")
}

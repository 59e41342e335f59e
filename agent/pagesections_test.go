package agent

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/shoal-dev/shoal/delivery"
)

// The fixtures of the delivery and target health sections, built with the
// code the agent uses (newPageDelivery, newPageHealth) from made-up queue
// states, counters and targets.

// fixtureHistory is 15 minutes of samples every 15 s to now: endpoint
// "mimir" sends 2,000-2,300 samples/s throughout, "backup" 2,000/s until
// 7 minutes ago (its receiver went down); 34 targets moved 10 minutes ago
// and 12 two minutes ago.
func fixtureHistory(now time.Time) *history {
	h := newHistory(historyStep, historyIntervals)
	var mimir, backup, moves uint64
	for i := range historyIntervals + 1 {
		t := now.Add(-time.Duration(historyIntervals-i) * historyStep)
		if i > 0 {
			mimir += uint64(15 * (2000 + 100*(i%4)))
			if i <= 32 {
				backup += 15 * 2000
			}
		}
		switch i {
		case 20:
			moves += 34
		case 52:
			moves += 12
		}
		h.add(sample{t: t, sent: map[string]uint64{"mimir": mimir, "backup": backup}, moves: moves})
	}
	return h
}

// fixtureDelivery: "mimir" healthy and nearly caught up, "backup" failing
// for 7 minutes, its queue past 80 % of the 2 GiB limit and dropping.
func fixtureDelivery(now time.Time) pageDelivery {
	h := fixtureHistory(now)
	ss := h.samples()
	cur := ss[len(ss)-1]
	cur.t = now.Add(5 * time.Second) // the page is rendered between two samples
	sts := []delivery.EndpointStatus{
		{Name: "mimir", URL: "http://mimir.example:9009/api/v1/push", BacklogBytes: 9400, BacklogSamples: 1850, OldestUnsent: now.Add(-2100 * time.Millisecond)},
		{Name: "backup", URL: "https://backup.example/api/v1/write", BacklogBytes: 1_825_361_100, BacklogSamples: 1_204_000, OldestUnsent: now.Add(-7 * time.Minute),
			LastError: "server returned HTTP status 503 Service Unavailable: receiver is restarting"},
	}
	progress := []delivery.Progress{
		{Name: "mimir", SentSamples: cur.sent["mimir"], NewestSent: now.Add(-1400 * time.Millisecond),
			LastError: "Post \"http://mimir.example:9009/api/v1/push\": context deadline exceeded", LastErrorTime: now.Add(-42 * time.Minute)},
		{Name: "backup", SentSamples: cur.sent["backup"], NewestSent: now.Add(-7*time.Minute - 2*time.Second),
			LastError: "server returned HTTP status 503 Service Unavailable: receiver is restarting", LastErrorTime: now.Add(-3 * time.Second), DroppedSamples: 12_000},
	}
	return newPageDelivery(now, sts, progress, h, cur, 2<<30, "")
}

// fixtureHealth: job "node" with a down, a not yet scraped and two up
// targets, job "api" all up.
func fixtureHealth(now time.Time, limit int) pageHealth {
	ts := []Target{
		{ScrapePool: "node", ScrapeURL: "http://a:9100/metrics", Health: promscrape.HealthGood, LastScrape: now.Add(-3 * time.Second), LastScrapeDuration: 0.0123},
		{ScrapePool: "node", ScrapeURL: "http://c:9100/metrics", Health: promscrape.HealthBad, LastScrape: now.Add(-7 * time.Second), LastScrapeDuration: 0.5,
			LastError: "Get \"http://c:9100/metrics\": dial tcp 10.0.0.3:9100: connect: connection refused"},
		{ScrapePool: "node", ScrapeURL: "http://d:9100/metrics", Health: promscrape.HealthUnknown},
		{ScrapePool: "node", ScrapeURL: "http://b:9100/metrics", Health: promscrape.HealthGood, LastScrape: now.Add(-12 * time.Second), LastScrapeDuration: 0.00085},
		{ScrapePool: "api", ScrapeURL: "http://api-1:8080/metrics", Health: promscrape.HealthGood, LastScrape: now.Add(-1 * time.Second), LastScrapeDuration: 1.2041},
	}
	return newPageHealth(now, ts, limit)
}

// checkPageDelivery checks the delivery section of pageFixture.
func checkPageDelivery(t *testing.T, doc *html.Node) {
	t.Helper()
	rows := pageFind(pageByID(t, doc, "delivery"), "tr", "endpoint")
	require.Len(t, rows, 2)
	mimir, backup := rows[0], rows[1]
	require.Equal(t, "mimir", pageAttr(mimir, "data-endpoint"))
	require.Equal(t, "1850", pageAttr(mimir, "data-pending"))
	require.Equal(t, "1.400", pageAttr(mimir, "data-lag-seconds"))
	require.Equal(t, "false", pageAttr(mimir, "data-failing"))
	require.Equal(t, "1,850 9.2 KiB", cell(t, mimir, "pending"))
	require.Equal(t, "1.4s", cell(t, mimir, "lag"))
	require.Equal(t, "2.1s", cell(t, mimir, "behind"))
	// From the sample 65 s before the page: 4 intervals of 15 s at 2,100,
	// 2,200, 2,300 and 2,000 samples/s and 5 s of none sent.
	require.Equal(t, "1,985/s over 1m5s", cell(t, mimir, "rate"))
	require.Equal(t, "0.0 % of 2.0 GiB", cell(t, mimir, "fill"))
	require.Contains(t, cell(t, mimir, "error"), "recovered 42m0s ago")
	require.Contains(t, cell(t, mimir, "error"), "context deadline exceeded")

	require.Equal(t, "backup", pageAttr(backup, "data-endpoint"))
	require.True(t, pageHasClass(backup, "failing"))
	require.Equal(t, "true", pageAttr(backup, "data-failing"))
	require.Equal(t, "7m2s", cell(t, backup, "lag"))
	require.Equal(t, "7m0s", cell(t, backup, "behind"))
	require.Equal(t, "0/s over 1m5s", cell(t, backup, "rate"))
	require.Equal(t, "85.0 % of 2.0 GiB 12,000 dropped by the limit", cell(t, backup, "fill"))
	require.True(t, pageHasClass(pageFind(backup, "td", "fill")[0], "near-full"))
	require.Equal(t, "failing 3s ago server returned HTTP status 503 Service Unavailable: receiver is restarting", cell(t, backup, "error"))
	require.Contains(t, pageText(pageByID(t, doc, "delivery-section")), "2 remote_write endpoints, queue limit 2.0 GiB each")
	require.Nil(t, pageFindID(doc, "storage-unwritable"))
	require.Nil(t, pageFindID(doc, "delivery-empty"))

	sent := pageByID(t, doc, "chart-sent")
	require.Equal(t, "60", pageAttr(sent, "data-points"))
	points := pageFind(sent, "g", "point")
	require.Len(t, points, 60)
	require.Equal(t, "09:56:12–09:56:27: 4,100 samples/s", pageText(pageFind(points[0], "title", "")[0]))
	require.Equal(t, "10:10:57–10:11:12: 2,000 samples/s", pageText(pageFind(points[59], "title", "")[0]))
	require.Equal(t, "min 2,000 · max 4,300 · latest 2,000 samples/s", pageText(pageFind(sent, "span", "chart-summary")[0]))
	require.Contains(t, pageText(pageFind(sent, "span", "chart-title")[0]), "all endpoints")
	require.Len(t, pageFind(sent, "rect", "bar"), 60)
	require.Equal(t, []string{"0", "2,500", "5,000"}, texts(pageFind(sent, "text", "ylabel")))
	require.Equal(t, []string{"-15m", "-10m", "-5m", "now"}, texts(pageFind(sent, "text", "xlabel")))
	require.Equal(t, []string{"time before 10:11:12", "samples/s"}, texts(pageFind(sent, "text", "axis-title")))

	moves := pageByID(t, doc, "chart-moves")
	require.Equal(t, "min 0 · max 34 · latest 0 moves", pageText(pageFind(moves, "span", "chart-summary")[0]))
	mpoints := pageFind(moves, "g", "point")
	require.Len(t, mpoints, 60)
	require.Equal(t, "34", pageAttr(mpoints[19], "data-value"))
	require.Equal(t, "10:00:57–10:01:12: 34 moves", pageText(pageFind(mpoints[19], "title", "")[0]))
	require.Equal(t, "12", pageAttr(mpoints[51], "data-value"))
}

// checkPageHealth checks the target health section of pageFixture.
func checkPageHealth(t *testing.T, doc *html.Node) {
	t.Helper()
	facts := pageByID(t, doc, "health-counts")
	require.Equal(t, "3 up, 1 down, 1 unknown", pageText(facts))
	require.Equal(t, "1", pageAttr(facts, "data-down"))
	jobs := pageFind(pageByID(t, doc, "health-section"), "section", "health-job")
	require.Len(t, jobs, 2)
	node, api := jobs[0], jobs[1]
	require.Equal(t, "node", pageAttr(node, "data-job"), "a job with a down target comes first")
	require.Equal(t, "api", pageAttr(api, "data-job"))
	require.Equal(t, "2", pageAttr(node, "data-up"))
	rows := pageFind(node, "tr", "health-target")
	require.Len(t, rows, 3, "the limit of the fixture")
	var health, urls []string
	for _, r := range rows {
		health = append(health, pageAttr(r, "data-health"))
		urls = append(urls, pageAttr(r, "data-url"))
	}
	require.Equal(t, []string{"down", "unknown", "up"}, health, "down first, then not scraped yet")
	require.Equal(t, []string{"http://c:9100/metrics", "http://d:9100/metrics", "http://a:9100/metrics"}, urls)
	require.Equal(t, "7s ago", cell(t, rows[0], "last-scrape"))
	require.Equal(t, "2025-03-04T10:11:05.000Z", pageAttr(pageFind(rows[0], "td", "last-scrape")[0], "title"))
	require.Equal(t, "500ms", cell(t, rows[0], "duration"))
	require.Contains(t, cell(t, rows[0], "error"), "connection refused")
	require.Equal(t, "never", cell(t, rows[1], "last-scrape"))
	require.Equal(t, "–", cell(t, rows[1], "duration"))
	require.Equal(t, "12.3ms", cell(t, rows[2], "duration"))
	require.Empty(t, cell(t, rows[2], "error"))
	hidden := pageFind(node, "p", "hidden-count")
	require.Len(t, hidden, 1)
	require.Contains(t, pageText(hidden[0]), "1 more not shown (down targets are listed first)")
	require.Equal(t, "1.204s", cell(t, pageFind(api, "tr", "health-target")[0], "duration"))
	require.Empty(t, pageFind(api, "p", "hidden-count"))
}

func TestPageDeliveryAndHealth(t *testing.T) {
	base := pageFixture()
	doc := pageRender(t, base)
	checkPageDelivery(t, doc)
	checkPageHealth(t, doc)

	t.Run("no endpoint, nothing scraped, queue unwritable", func(t *testing.T) {
		d := base
		now := d.Generated
		d.Delivery = newPageDelivery(now, nil, nil, newHistory(historyStep, historyIntervals), sample{t: now}, 0,
			"storage cannot write to /data since 2025-03-04T11:10:00Z (no space left on device)")
		d.Health = newPageHealth(now, nil, pageMaxTargetsPerJob)
		doc := pageRender(t, d)
		require.Contains(t, pageText(pageByID(t, doc, "storage-unwritable")), "no space left on device")
		require.NotNil(t, pageFindID(doc, "delivery-empty"))
		require.Nil(t, pageFindID(doc, "delivery"))
		require.Contains(t, pageText(pageByID(t, doc, "delivery-section")), "queue limit unlimited")
		require.NotNil(t, pageFindID(doc, "health-empty"))
		require.Equal(t, "no target scraped", pageText(pageByID(t, doc, "health-counts")))
		for _, id := range []string{"chart-sent", "chart-moves"} {
			c := pageByID(t, doc, id)
			require.Equal(t, "0", pageAttr(c, "data-points"))
			require.Empty(t, pageFind(c, "g", "point"))
			require.Contains(t, pageText(pageFind(c, "span", "chart-summary")[0]), "no data yet")
		}
	})

	t.Run("an endpoint that never delivered", func(t *testing.T) {
		now := base.Generated
		e := newPageEndpoint(now, delivery.EndpointStatus{Name: "new", BacklogSamples: 10}, delivery.Progress{Name: "new"}, 0)
		require.Empty(t, e.Lag)
		require.Equal(t, -1.0, e.LagSeconds)
		require.Empty(t, e.Behind)
		require.Empty(t, e.Error)
		require.Empty(t, e.Fill)
		d := base
		d.Delivery.Endpoints = []pageEndpoint{e}
		doc := pageRender(t, d)
		row := pageFind(pageByID(t, doc, "delivery"), "tr", "endpoint")[0]
		require.Equal(t, "–", cell(t, row, "lag"))
		require.Equal(t, "–", cell(t, row, "rate"))
		require.Equal(t, "none", cell(t, row, "error"))
		require.Equal(t, "no limit", cell(t, row, "fill"))
	})
}

// cell is the text of the td of class class in row.
func cell(t *testing.T, row *html.Node, class string) string {
	t.Helper()
	tds := pageFind(row, "td", class)
	require.Len(t, tds, 1, "cells of class %q", class)
	return pageText(tds[0])
}

func texts(ns []*html.Node) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, pageText(n))
	}
	return out
}

func TestNewPageHealthLimits(t *testing.T) {
	now := histT0
	var ts []Target
	for i := range 5 {
		h := promscrape.HealthGood
		if i == 4 {
			h = promscrape.HealthBad
		}
		ts = append(ts, Target{ScrapePool: "j", ScrapeURL: fmt.Sprintf("http://t%d/", i), Health: h, LastScrape: now})
	}
	ts = append(ts, Target{ScrapePool: "k", ScrapeURL: "http://k/"}) // health not set yet
	h := newPageHealth(now, ts, 2)
	require.Equal(t, 6, h.Total())
	require.Equal(t, []int{4, 1, 1}, []int{h.Up, h.Down, h.Unknown})
	require.Len(t, h.Jobs, 2)
	j := h.Jobs[0]
	require.Equal(t, "j", j.Name)
	require.Equal(t, 3, j.Hidden)
	require.Equal(t, "http://t4/", j.Targets[0].URL, "the down target is listed although it sorts last by URL")
	require.Equal(t, "unknown", h.Jobs[1].Targets[0].Health)
}

// TestPageDeliveryEscapesAndMasks: what a receiver, a target or the disk
// says is shown as text, never as markup, and the page shows no secret of a
// remote-write URL: neither its password nor the values of its query (an
// API key), in its row or quoted in its error.
func TestPageDeliveryEscapesAndMasks(t *testing.T) {
	const (
		pw, key   = "rw-pw-s3cret", "rw-key-s3cret"
		rwURL     = "https://shoal:" + pw + "@mimir.example/api/v1/push?api_key=" + key + "&tenant=t1"
		shownURL  = "https://shoal:xxxxx@mimir.example/api/v1/push?api_key=xxxxx&tenant=xxxxx"
		markup    = `<img src=x onerror=alert(1)>`
		sendError = `Post "` + rwURL + `": server returned HTTP status 400 Bad Request: ` + markup + ` & more`
		shownErr  = `Post "` + shownURL + `": server returned HTTP status 400 Bad Request: ` + markup + ` & more`
		scrapeErr = `expected a valid start token, got "<script>alert(2)</script>"`
		diskErr   = `storage cannot write to /data/<b>queue</b> (no space left on device)`
	)
	d := pageFixture()
	now := d.Generated
	h := fixtureHistory(now)
	ss := h.samples()
	cur := ss[len(ss)-1]
	sts := []delivery.EndpointStatus{{Name: "mimir", URL: rwURL, BacklogSamples: 5, LastError: sendError}}
	progress := []delivery.Progress{{Name: "mimir", SentSamples: cur.sent["mimir"], LastError: sendError, LastErrorTime: now.Add(-time.Second)}}
	d.Delivery = newPageDelivery(now, sts, progress, h, cur, 0, diskErr)
	d.Health = newPageHealth(now, []Target{{ScrapePool: "node", ScrapeURL: "http://a:9100/metrics", Health: promscrape.HealthBad,
		LastScrape: now.Add(-time.Second), LastError: scrapeErr}}, pageMaxTargetsPerJob)

	var buf bytes.Buffer
	require.NoError(t, pageTmpl.Execute(&buf, d))
	page := buf.String()
	for _, s := range []string{pw, key, "<img", "<script", "<b>"} {
		require.NotContains(t, page, s)
	}
	require.Contains(t, page, "&lt;img src=x onerror=alert(1)&gt;")

	doc, err := html.Parse(&buf)
	require.NoError(t, err)
	for _, tag := range []string{"img", "script", "b"} {
		require.Empty(t, pageFind(doc, tag, ""), "no %s element", tag)
	}
	row := pageFind(pageByID(t, doc, "delivery"), "tr", "endpoint")[0]
	require.Equal(t, "true", pageAttr(row, "data-failing"))
	require.Equal(t, shownURL, pageText(pageFind(row, "div", "url")[0]))
	require.Equal(t, "failing 1s ago "+shownErr, cell(t, row, "error"), "the error as text, its URL masked")
	require.Contains(t, pageText(pageByID(t, doc, "storage-unwritable")), diskErr)
	target := pageFind(pageByID(t, doc, "health-section"), "tr", "health-target")[0]
	require.Equal(t, scrapeErr, cell(t, target, "error"))
}

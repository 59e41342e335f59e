package agent

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// TestPageShowsRealDelivery runs an agent that scrapes two targets and one
// address where nothing listens, and sends to a real Prometheus receiver:
// the page shows the endpoint's real send rate and lag, the chart fills
// with the samples the receiver got, the down target comes first with its
// error; when the receiver stops, the endpoint shows failing with the
// error and a growing backlog.
func TestPageShowsRealDelivery(t *testing.T) {
	testenv.SkipWithout(t, testenv.PrometheusBinary)
	ctx := t.Context()
	rcv, err := testenv.RunReceiver(ctx, testenv.ForTest(t), testenv.ReceiverOptions{})
	require.NoError(t, err)
	down := pageFreeAddr(t)
	const step = 250 * time.Millisecond
	_, base, targets := startPageAgentWith(t, "page-delivery", pageAgentSetup{remoteWrite: rcv.RemoteWriteURL, downTargets: []string{down}, historyStep: step})

	// Each of the three targets gives its up and 4 more report series per
	// second (1 s interval), the two that answer also up_test: about 17
	// samples/s.
	var doc *html.Node
	require.Eventually(t, func() bool {
		doc = pageFetch(base)
		if doc == nil {
			return false
		}
		row := pageFindFirst(doc, "tr", "endpoint")
		sent := pageFindID(doc, "chart-sent")
		return row != nil && attrFloat(row, "data-rate") > 0 && attrFloat(row, "data-lag-seconds") >= 0 &&
			sent != nil && attrFloat(sent, "data-points") >= 8 && pageFindID(doc, "health-counts") != nil &&
			pageAttr(pageFindID(doc, "health-counts"), "data-up") == "2" && pageAttr(pageFindID(doc, "health-counts"), "data-down") == "1"
	}, convergeTimeout, 100*time.Millisecond, "the page shows no delivery or health")

	row := pageFindFirst(doc, "tr", "endpoint")
	require.Equal(t, "receiver", pageAttr(row, "data-endpoint"))
	require.Equal(t, "false", pageAttr(row, "data-failing"))
	rate := attrFloat(row, "data-rate")
	require.Greater(t, rate, 5.0, "about 17 samples/s")
	require.Less(t, rate, 60.0, "about 17 samples/s")
	require.Less(t, attrFloat(row, "data-lag-seconds"), 10.0, "the newest scrape is at most a few seconds old at the receiver")
	require.Equal(t, "none", cell(t, row, "error"))
	t.Logf("delivery row: %s", pageText(row))

	sent := pageByID(t, doc, "chart-sent")
	require.Greater(t, attrFloat(sent, "data-max"), 0.0)
	require.Contains(t, pageText(pageFind(sent, "span", "chart-summary")[0]), "samples/s")
	require.Len(t, pageFind(sent, "g", "point"), int(attrFloat(sent, "data-points")))
	t.Logf("chart: %s", pageText(pageFind(sent, "figcaption", "")[0]))

	// What the page says was sent, the receiver has.
	var got []testenv.Sample
	require.Eventually(t, func() bool {
		got, err = rcv.Query(ctx, `count(up{job="farm"})`, time.Now())
		return err == nil && len(got) == 1 && got[0].V == 3
	}, convergeTimeout, pollInterval, "the receiver has the three targets' up series")

	rows := pageFind(pageByID(t, doc, "health-section"), "tr", "health-target")
	require.Len(t, rows, 3)
	require.Equal(t, "down", pageAttr(rows[0], "data-health"), "the down target first")
	require.Equal(t, "http://"+down+"/metrics", pageAttr(rows[0], "data-url"))
	require.Contains(t, cell(t, rows[0], "error"), "connection refused")
	for _, r := range rows[1:] {
		require.Equal(t, "up", pageAttr(r, "data-health"))
		require.Contains(t, []string{"http://" + targets[0] + "/metrics", "http://" + targets[1] + "/metrics"}, pageAttr(r, "data-url"))
		require.Regexp(t, `^\d+s ago$`, cell(t, r, "last-scrape"))
		require.Regexp(t, `^[\d.]+(µs|ms|s)$`, cell(t, r, "duration"))
	}

	// The receiver goes away: the endpoint fails, says why and since when,
	// and its backlog grows.
	require.NoError(t, rcv.Stop())
	require.Eventually(t, func() bool {
		doc = pageFetch(base)
		row := pageFindFirst(doc, "tr", "endpoint")
		return row != nil && pageAttr(row, "data-failing") == "true" && attrFloat(row, "data-pending") > 0
	}, convergeTimeout, 100*time.Millisecond, "the page does not show the failing endpoint")
	row = pageFindFirst(doc, "tr", "endpoint")
	errText := cell(t, row, "error")
	require.Contains(t, errText, "failing")
	require.Contains(t, errText, "connection refused")
	require.Regexp(t, `failing \d+s ago`, errText)
	t.Logf("receiver stopped: %s", pageText(row))

	// As Chromium renders it: the failing endpoint, the down target first,
	// the charts drawn; nothing overflows at 1400 or 800 px.
	browser := pageLookChromium(t)
	if browser == "" {
		t.Log("no Chromium: the page is not checked in a browser")
		return
	}
	doc = pageDumpDOM(t, browser, base)
	row = pageFindFirst(doc, "tr", "endpoint")
	require.NotNil(t, row)
	require.Equal(t, "true", pageAttr(row, "data-failing"))
	require.Contains(t, cell(t, row, "error"), "connection refused")
	rows = pageFind(pageByID(t, doc, "health-section"), "tr", "health-target")
	require.Len(t, rows, 3)
	require.Equal(t, "down", pageAttr(rows[0], "data-health"))
	require.Greater(t, attrFloat(pageByID(t, doc, "chart-sent"), "data-points"), 0.0)
	checkBrowserLayout(t, browser, base)
}

// pageFetch GETs and parses the page; nil on any failure.
func pageFetch(url string) *html.Node {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		return nil
	}
	return doc
}

func pageFindFirst(n *html.Node, tag, class string) *html.Node {
	if n == nil {
		return nil
	}
	if found := pageFind(n, tag, class); len(found) > 0 {
		return found[0]
	}
	return nil
}

// attrFloat is a numeric attribute, -1 when it is missing or not a
// number.
func attrFloat(n *html.Node, key string) float64 {
	v, err := strconv.ParseFloat(pageAttr(n, key), 64)
	if err != nil {
		return -1
	}
	return v
}

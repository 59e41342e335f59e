package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// pageEnvDocs, when set, is the directory where TestPageLayout saves its
// screenshots (status-page-1400.png, status-page-800.png): docs/ holds the
// ones the README shows.
const pageEnvDocs = "SHOAL_PAGE_DOCS"

// pageLayoutWidths are the window widths the layout must hold at: a
// desktop and a narrow window (a laptop's half screen).
var pageLayoutWidths = []int{1400, 800}

// pageMaxScreenshotHeight bounds the screenshot's height (the page's own
// height is used up to it).
const pageMaxScreenshotHeight = 6000

// pageLayoutScript measures the page once it is laid out and appends the
// figures as JSON in <pre id="layout-report">, which --dump-dom returns.
// Only the test serves it: the page itself has no script.
const pageLayoutScript = `<script>
(function () {
  var vw = document.documentElement.clientWidth, problems = [];
  function name(e) {
    var c = typeof e.className === "string" ? e.className : (e.className && e.className.baseVal) || "";
    return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (c ? "." + c.trim().split(/\s+/).join(".") : "");
  }
  document.querySelectorAll("main *, .topbar, footer").forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
      problems.push(name(e) + " spans " + r.left.toFixed(1) + "-" + r.right.toFixed(1) + " of " + vw);
    }
  });
  document.querySelectorAll(".scroll, table, td, th").forEach(function (e) {
    if (e.scrollWidth > e.clientWidth + 1) {
      problems.push(name(e) + " clips its content: " + e.scrollWidth + " wide in " + e.clientWidth);
    }
  });
  var charts = [];
  document.querySelectorAll("figure.chart svg").forEach(function (s) {
    charts.push(Math.round(s.getBoundingClientRect().width));
  });
  var sections = {};
  ["members-section", "delivery-section", "health-section", "moves-section", "targets",
   "delivery", "delivery-empty", "chart-sent", "chart-moves", "health-counts"].forEach(function (id) {
    var e = document.getElementById(id);
    if (!e) { return; }
    var r = e.getBoundingClientRect(), st = getComputedStyle(e);
    sections[id] = {left: r.left, right: r.right, width: r.width, height: r.height,
      shown: st.display !== "none" && st.visibility !== "hidden" && parseFloat(st.opacity) > 0};
  });
  var pre = document.createElement("pre");
  pre.id = "layout-report";
  pre.textContent = JSON.stringify({
    viewportWidth: vw,
    scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight,
    problems: problems,
    chartWidths: charts,
    sections: sections
  });
  document.body.appendChild(pre);
})();
</script>`

// pageLayout is what pageLayoutScript reports.
type pageLayout struct {
	ViewportWidth int      `json:"viewportWidth"`
	ScrollWidth   int      `json:"scrollWidth"`
	ScrollHeight  int      `json:"scrollHeight"`
	Problems      []string `json:"problems"`
	ChartWidths   []int    `json:"chartWidths"`
	// Sections are the boxes of the page's sections and of the delivery
	// and health elements, by id; those not on the page are missing.
	Sections map[string]pageBox `json:"sections"`
}

// pageBox is an element's box, in CSS px, and whether it is shown.
type pageBox struct {
	Left, Right, Width, Height float64
	Shown                      bool
}

// requireShown checks that the elements ids are on the page l measured,
// shown, at least minWidth wide and 1 px high, and inside the window.
func requireShown(t *testing.T, l pageLayout, minWidth float64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		b, ok := l.Sections[id]
		require.True(t, ok, "#%s is on the page", id)
		require.True(t, b.Shown, "#%s is shown", id)
		require.GreaterOrEqual(t, b.Width, minWidth, "#%s is at least %.0f px wide at %d px: %+v", id, minWidth, l.ViewportWidth, b)
		require.Greater(t, b.Height, 1.0, "#%s has a height: %+v", id, b)
		require.GreaterOrEqual(t, b.Left, 0.0, "#%s starts in the window: %+v", id, b)
		require.LessOrEqual(t, b.Right, float64(l.ViewportWidth), "#%s ends in the window: %+v", id, b)
	}
}

// pageSectionIDs are the sections every page has.
var pageSectionIDs = []string{"members-section", "delivery-section", "health-section", "moves-section", "targets"}

// pageShowcase is a representative page of a three-agent cluster: one
// remote_write endpoint healthy, one failing and near its size limit,
// targets down, moves recorded.
func pageShowcase() pageData {
	d := pageFixture()
	now := d.Generated
	d.Members = append(d.Members, pageMember{Name: "node-3", URL: "http://10.0.0.3:9090/", Addr: "10.0.0.3:7946", State: "active",
		Version: "1.2.3", Age: "3h2m", Owned: 7, Series: "9,876", Digest: "00000000000000ab", Agrees: true, Clock: "+2ms ±95µs"})
	d.Members[1].State, d.Members[1].Digest, d.Members[1].Agrees = "active", "00000000000000ab", true
	d.RingSize, d.Disagree = 3, []string{}
	var ts []pageTarget
	owners := [][]string{{"node-1", "node-2"}, {"node-2", "node-3"}, {"node-3", "node-1"}}
	for i := range 14 {
		o := owners[i%3]
		ts = append(ts, pageTarget{Job: "node", URL: fmt.Sprintf("http://node-exporter-%02d.eu1.example:9100/metrics", i), Owners: o, Mine: o[0] == "node-1" || o[1] == "node-1"})
	}
	for i := range 4 {
		o := owners[(i+1)%3]
		ts = append(ts, pageTarget{Job: "api", URL: fmt.Sprintf("http://api-%d:8080/metrics", i+1), Owners: o, Mine: o[0] == "node-1" || o[1] == "node-1"})
	}
	ts[2].Error = `Get "http://node-exporter-02.eu1.example:9100/metrics": dial tcp 10.0.0.3:9100: connect: connection refused`
	d.Jobs, d.Discovered, d.Owned = groupTargets(ts, pageMaxTargetsPerJob)
	d.Moves = nil
	for i, m := range []struct{ url, from, to, reason string }{
		{"http://api-2:8080/metrics", "node-2", "node-3", "node-3 joined (active)"},
		{"http://node-exporter-05.eu1.example:9100/metrics", "node-1", "node-3", "node-3 joined (active)"},
		{"http://node-exporter-08.eu1.example:9100/metrics", "node-2", "node-3", "node-3 joined (active)"},
		{"http://node-exporter-11.eu1.example:9100/metrics", "node-1", "node-3", "node-3 joined (active)"},
	} {
		t := now.Add(-2*time.Minute - time.Duration(i)*time.Millisecond)
		d.Moves = append(d.Moves, pageMove{Time: t, Ago: ageString(now, t), Job: "node", URL: m.url, From: []string{m.from}, To: []string{m.to}, Reason: m.reason, Mine: m.from == "node-1"})
	}
	d.MovesTotal = 46
	d.Health = fixtureHealth(now, pageMaxTargetsPerJob)
	// Errors as long as receivers and targets write them, a label set
	// without a space: they wrap inside their cells.
	d.Delivery.Endpoints[1].Error = `server returned HTTP status 400 Bad Request: err-mimir-sample-out-of-order: the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed. series={__name__="node_cpu_seconds_total",cpu="7",instance="node-exporter-02.eu1.example:9100",job="node",mode="softirq",region="eu1"},timestamp=2025-03-04T10:11:09.123Z`
	d.Health.Jobs[0].Targets[0].Error = `Get "http://c:9100/metrics?collect[]=cpu&collect[]=meminfo&collect[]=filesystem&collect[]=netdev&collect[]=diskstats&collect[]=loadavg": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`
	return d
}

// TestPageLayout renders the showcase page in Chromium at each of
// pageLayoutWidths: nothing is wider than the window, no table or cell
// clips its content, the charts fit; then it takes a screenshot of the
// whole page at that width (into $SHOAL_PAGE_DOCS when set).
func TestPageLayout(t *testing.T) {
	browser := pageChromium(t)
	var buf bytes.Buffer
	require.NoError(t, pageTmpl.Execute(&buf, pageShowcase()))
	page := buf.String()
	require.NotContains(t, page, "<script", "the page itself needs no script")
	measured := strings.Replace(page, "</body>", pageLayoutScript+"</body>", 1)
	mux := http.NewServeMux()
	serve := func(body string) http.HandlerFunc {
		return func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = rw.Write([]byte(body))
		}
	}
	mux.HandleFunc("GET /{$}", serve(page))
	mux.HandleFunc("GET /measure", serve(measured))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := os.Getenv(pageEnvDocs)
	if dir == "" {
		dir = t.TempDir()
	}
	for _, width := range pageLayoutWidths {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) {
			l := pageMeasure(t, browser, srv.URL+"/measure", width)
			require.Equal(t, width, l.ViewportWidth, "the window is %d px wide", width)
			require.Empty(t, l.Problems, "elements wider than the window or clipped")
			require.LessOrEqual(t, l.ScrollWidth, l.ViewportWidth, "no horizontal scrolling")
			// The sections span the page; the delivery table and each chart
			// at least half of it at 800 px (the charts stack there).
			requireShown(t, l, 0.9*float64(width)-40, pageSectionIDs...)
			requireShown(t, l, 0.9*float64(width)-40, "delivery")
			requireShown(t, l, 300, "chart-sent", "chart-moves")
			requireShown(t, l, 100, "health-counts")
			require.Len(t, l.ChartWidths, 2)
			for _, w := range l.ChartWidths {
				require.Greater(t, w, 300, "a chart is readable, not squeezed")
			}

			height := min(l.ScrollHeight, pageMaxScreenshotHeight)
			pageScreenshotAt(t, browser, srv.URL+"/", filepath.Join(dir, fmt.Sprintf("status-page-%d.png", width)), width, height)
		})
	}
}

// pageScreenshotAt saves a screenshot of url in a window of width by
// height px to path and checks that it is a PNG of that size.
func pageScreenshotAt(t *testing.T, browser, url, path string, width, height int) {
	t.Helper()
	path, err := filepath.Abs(path)
	require.NoError(t, err)
	pageRunChromium(t, browser, "--hide-scrollbars", fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+path, url)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	cfg, err := png.DecodeConfig(f)
	require.NoError(t, err)
	require.Equal(t, width, cfg.Width)
	require.Equal(t, height, cfg.Height)
	t.Logf("screenshot %dx%d saved to %s", cfg.Width, cfg.Height, path)
}

// pageMeasure loads url (the page with pageLayoutScript) in a window width
// wide and returns the script's report.
func pageMeasure(t *testing.T, browser, url string, width int) pageLayout {
	t.Helper()
	out := pageRunChromium(t, browser, "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
		fmt.Sprintf("--window-size=%d,1000", width), "--dump-dom", url)
	doc, err := html.Parse(bytes.NewReader(out))
	require.NoError(t, err)
	pre := pageFindID(doc, "layout-report")
	require.NotNil(t, pre, "the layout script did not run:\n%s", out)
	var l pageLayout
	require.NoError(t, json.Unmarshal([]byte(pageText(pre)), &l), pageText(pre))
	return l
}

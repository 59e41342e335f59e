package agent

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The page's placement section: the leader, the plan, the imbalance, the
// members' series and samples/s as horizontal inline SVG bars (the fair
// share marked on the series bars) and the targets the plan overrides.

// Bar chart geometry, in SVG user units.
const (
	barsWidth  = 560
	barsLabelW = 120 // member names
	barsValueW = 110 // the value after the bar
	barsRowH   = 20
	barsBarH   = 13
	barsTop    = 4
	// pageMaxOverrides caps the overrides listed; the API lists them all.
	pageMaxOverrides = 50
)

// pagePlacement is the placement section.
type pagePlacement struct {
	Mode       string
	Leader     string
	LeaderSelf bool
	LeaderAge  string
	// Plan is "plan 3 (digest), in force since …"; empty without a plan.
	Plan       string
	PlanAhead  bool
	Current    bool
	FetchError string
	// Measured: the leader's figures are there.
	Measured  bool
	LoadBy    string
	MaxMean   string
	Imbalance string
	Bound     string
	Within    bool
	NoBetter  bool   // above the bound, and no placement does better
	OverFor   string // how long above the bound, empty when within
	Series    pageBars
	Samples   pageBars
	Overrides []pageOverride
	Hidden    int
}

// pageBars is one horizontal bar chart.
type pageBars struct {
	ID, Title     string
	Width, Height int
	LabelX, BarX  float64
	Rows          []pageBarRow
}

// pageBarRow is one member's bar; Fair, when positive, is the x of the fair
// share's mark.
type pageBarRow struct {
	Label, Value, Title string
	Y, TextY, W, ValueX float64
	Fair                float64
	Self, Over          bool
}

// pageOverride is one overridden target.
type pageOverride struct {
	Job, URL, Member, Rendezvous, Reason, Series string
}

func (a *Agent) pagePlacement(ctx context.Context, now time.Time) pagePlacement {
	pl := a.placementView(ctx, false)
	p := pagePlacement{Mode: pl.Mode, Leader: pl.Leader.Leader, LeaderSelf: pl.Leader.Self, LeaderAge: ageString(now, pl.Leader.Since),
		Current: pl.Current, FetchError: pl.FetchError, Bound: fmt.Sprintf("%.2f", 1+pl.Bound)}
	if pl.Plan != nil {
		when := "in force since " + pl.Plan.At.Format("15:04:05")
		if !pl.Plan.InForce {
			when, p.PlanAhead = "takes effect at "+pl.Plan.At.Format("15:04:05"), true
		}
		p.Plan = fmt.Sprintf("plan %d (%s), %d override%s, by %s, %s", pl.Plan.Version, pl.Plan.Digest, pl.Plan.Overrides, plural(pl.Plan.Overrides), pl.Plan.Leader, when)
	}
	if pl.LoadBy == "" {
		return p
	}
	p.Measured, p.LoadBy = true, pl.LoadBy
	p.MaxMean, p.Imbalance, p.Within, p.NoBetter = fmt.Sprintf("%.3f", pl.MaxMean), fmt.Sprintf("%.3f", pl.Imbalance), pl.Within, pl.NoBetter
	if pl.OverSince != nil {
		p.OverFor = ageString(now, *pl.OverSince)
	}
	self := a.node.Name()
	series, fair, samples := make([]float64, len(pl.Members)), make([]float64, len(pl.Members)), make([]float64, len(pl.Members))
	var labels []string
	for i, m := range pl.Members {
		labels = append(labels, m.Name)
		series[i], fair[i], samples[i] = m.Series, m.Fair, m.SamplesPerSecond
	}
	p.Series = newPageBars("placement-series", "Series per member (| marks the fair share)", labels, self, series, fair, 1+pl.Bound, "series")
	p.Samples = newPageBars("placement-samples", "Samples per second per member", labels, self, samples, nil, 0, "samples/s")
	for i, o := range pl.Overrides {
		if i == pageMaxOverrides {
			p.Hidden = len(pl.Overrides) - i
			break
		}
		url := o.URL
		if url == "" {
			url = o.Key
		}
		p.Overrides = append(p.Overrides, pageOverride{Job: o.Job, URL: url, Member: o.Member, Rendezvous: o.Rendezvous, Reason: reasonText(o.Reason), Series: seriesString(int64(math.Round(o.Series)))})
	}
	return p
}

// reasonText says why a plan moves a target, for the page.
func reasonText(r string) string {
	switch r {
	case "balance":
		return "balance: its rendezvous owner was above the bound"
	case "oversized":
		return "oversized: larger than a fair share, it sits alone"
	case "displaced":
		return "displaced: its rendezvous owner holds an oversized target"
	}
	return r
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// newPageBars lays out one bar per label; fair (optional) marks each
// member's fair share, and a value above fair·over is flagged.
func newPageBars(id, title string, labels []string, self string, values, fair []float64, over float64, unit string) pageBars {
	b := pageBars{ID: id, Title: title, Width: barsWidth, Height: barsTop*2 + barsRowH*len(labels), LabelX: barsLabelW - 6, BarX: barsLabelW}
	hi := 0.0
	for i, v := range values {
		hi = max(hi, v)
		if fair != nil {
			hi = max(hi, fair[i]*over)
		}
	}
	span := float64(barsWidth - barsLabelW - barsValueW)
	scale := 0.0
	if hi > 0 {
		scale = span / hi
	}
	for i, l := range labels {
		y := float64(barsTop + i*barsRowH)
		r := pageBarRow{Label: l, Self: l == self, Y: y + (barsRowH-barsBarH)/2, TextY: y + barsRowH/2 + 4,
			W: math.Max(values[i]*scale, 0), Value: strconv.FormatFloat(values[i], 'f', 0, 64)}
		r.Value = seriesString(int64(math.Round(values[i])))
		r.Title = fmt.Sprintf("%s: %s %s", l, r.Value, unit)
		if fair != nil && fair[i] > 0 {
			r.Fair = barsLabelW + fair[i]*scale
			r.Over = values[i] > fair[i]*over
			r.Title += fmt.Sprintf(" (%.0f%% of its fair share %s)", 100*values[i]/fair[i], seriesString(int64(math.Round(fair[i]))))
		}
		r.ValueX = barsLabelW + r.W + 6
		b.Rows = append(b.Rows, r)
	}
	return b
}

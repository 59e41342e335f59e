package agent

import (
	"fmt"
	"math"
	"time"

	"github.com/shoal-dev/shoal/delivery"
	"github.com/shoal-dev/shoal/internal/redact"
)

// queueNearFull is the share of --storage.max-size at which the page marks
// a queue, as the ShoalQueueNearFull alert does.
const queueNearFull = 0.8

// pageDelivery is the page's delivery section: the queue of every
// remote_write endpoint, the disk's state and the charts.
type pageDelivery struct {
	// Unwritable is why scraped samples cannot be queued (disk full, I/O
	// error); empty while they can.
	Unwritable string
	// MaxSize is --storage.max-size ("2.0 GiB"), empty when unlimited.
	MaxSize   string
	Endpoints []pageEndpoint
	Sent      pageChart
	Moves     pageChart
}

// pageEndpoint is one remote_write endpoint's row.
type pageEndpoint struct {
	Name, URL string
	// Pending is the samples queued and not yet acknowledged (an upper
	// bound, counted per queue file), PendingBytes their size on disk.
	Pending      string
	PendingN     uint64
	PendingBytes string
	// Lag is now minus the newest delivered sample's timestamp; "" before
	// the first delivery (LagSeconds is then -1).
	Lag        string
	LagSeconds float64
	// Behind is the age of the oldest unsent sample; "" when none waits.
	Behind string
	// Rate is the samples acknowledged per second over RateOver; "" until
	// the history has a first sample.
	Rate     string
	RateV    float64
	RateOver string
	// Fill is the backlog's share of --storage.max-size ("3.1 MiB, 0.2 %
	// of 2.0 GiB"); NearFull past queueNearFull.
	Fill     string
	FillPct  float64
	NearFull bool
	// Dropped is how many unsent samples the size limit deleted; "" if none.
	Dropped string
	// Failing is true while the last send failed (Error is then current);
	// after a success Error is the last failure, kept with its time.
	Failing    bool
	Error      string
	ErrorAgo   string
	ErrorTime  time.Time
	WaitingFor string
}

// pageDelivery gathers the delivery section at now from the queues'
// status and progress, and the history.
func (a *Agent) pageDelivery(now time.Time) pageDelivery {
	unwritable := ""
	if err := a.store.Health(); err != nil {
		unwritable = err.Error()
	}
	progress := a.store.d.Progress()
	cur := newSample(now, progress, a.moves.count())
	return newPageDelivery(now, a.store.d.Status(), progress, a.hist, cur, uint64(a.opts.Storage.MaxSize), unwritable)
}

// newPageDelivery is the delivery section at now: a row per endpoint of
// sts, with its progress, its send rate from h's samples to cur, and the
// charts of h. maxSize 0 is unlimited; unwritable is the storage's health
// error, "" while healthy. What it shows of URLs is masked (showDelivered).
func newPageDelivery(now time.Time, sts []delivery.EndpointStatus, progress []delivery.Progress, h *history, cur sample, maxSize uint64, unwritable string) pageDelivery {
	d := pageDelivery{Unwritable: showDelivered(unwritable)}
	byName := map[string]delivery.Progress{}
	for _, p := range progress {
		byName[p.Name] = p
	}
	ss := h.samples()
	for _, st := range sts {
		e := newPageEndpoint(now, st, byName[st.Name], maxSize)
		if r, over, ok := sendRate(ss, cur, st.Name, rateWindow); ok {
			e.Rate, e.RateV, e.RateOver = rateString(r), r, over.Round(time.Second).String()
		}
		d.Endpoints = append(d.Endpoints, e)
	}
	if maxSize > 0 {
		d.MaxSize = bytesString(maxSize)
	}
	d.Sent, d.Moves = historyCharts(ss, now, h.step, h.span(), len(d.Endpoints) > 1)
	return d
}

// newPageEndpoint is an endpoint's row at now; maxSize 0 is unlimited.
func newPageEndpoint(now time.Time, st delivery.EndpointStatus, p delivery.Progress, maxSize uint64) pageEndpoint {
	e := pageEndpoint{
		Name: st.Name, URL: st.URL,
		Pending: thousands(int64(st.BacklogSamples)), PendingN: st.BacklogSamples, PendingBytes: bytesString(st.BacklogBytes),
		LagSeconds: -1, WaitingFor: st.WaitingFor,
		Failing: st.LastError != "", Error: p.LastError, ErrorTime: p.LastErrorTime,
	}
	if !p.NewestSent.IsZero() {
		lag := max(now.Sub(p.NewestSent), 0)
		e.Lag, e.LagSeconds = lagString(lag), lag.Seconds()
	}
	if !st.OldestUnsent.IsZero() {
		e.Behind = lagString(max(now.Sub(st.OldestUnsent), 0))
	}
	if e.Failing {
		e.Error = st.LastError // the failure now, even if Progress was read before it
	}
	e.URL, e.Error = showDelivered(e.URL), showDelivered(e.Error)
	if !e.ErrorTime.IsZero() {
		e.ErrorAgo = ageString(now, e.ErrorTime)
	}
	if p.DroppedSamples > 0 {
		e.Dropped = thousands(int64(p.DroppedSamples))
	}
	if maxSize > 0 {
		e.FillPct = 100 * float64(st.BacklogBytes) / float64(maxSize)
		e.NearFull = e.FillPct >= 100*queueNearFull
		e.Fill = fmt.Sprintf("%.1f %% of %s", e.FillPct, bytesString(maxSize))
	}
	return e
}

// showDelivered is a remote-write URL, or a text quoting one such as a
// send error (`Post "https://h/push?api_key=...": ...`), as the page shows
// it: its password and the values of its query parameters masked
// ("?api_key=xxxxx"), whatever --web.show-scrape-params says (that flag is
// about scrape configs' params): a receiver's API key is often passed in
// the query.
func showDelivered(s string) string { return redact.Queries(s) }

// historyCharts are the charts of samples sent per second and of
// ownership moves per step, over span to now.
func historyCharts(ss []sample, now time.Time, step, span time.Duration, summed bool) (sent, moves pageChart) {
	var sv, mv []chartValue
	for _, iv := range intervals(ss) {
		sv = append(sv, chartValue{start: iv.start, end: iv.end, v: iv.sentRate})
		mv = append(mv, chartValue{start: iv.start, end: iv.end, v: float64(iv.moves)})
	}
	title := "Samples sent per second (acknowledged), each " + shortDuration(step)
	if summed {
		title += ", all endpoints"
	}
	sent = newChart("chart-sent", title, "samples/s", now, span, sv, rateString, false)
	moves = newChart("chart-moves", "Target ownership moves per "+shortDuration(step), "moves", now, span, mv, countString, true)
	return sent, moves
}

// lagString is a lag to a tenth of a second under 10 s, else as
// spanString.
func lagString(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return spanString(d)
}

// bytesString is n in binary units with one decimal: "3.1 MiB".
func bytesString(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	exp := int(math.Log(float64(n)) / math.Log(unit))
	exp = min(exp, 6)
	return fmt.Sprintf("%.1f %ciB", float64(n)/math.Pow(unit, float64(exp)), "KMGTPE"[exp-1])
}

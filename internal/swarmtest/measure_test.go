//go:build linux

package swarmtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// The receiver's counters, read from its own /metrics (it never restarts).
// Its remote-write handler answers 400 to a request with an out-of-order
// sample; with remote write 2.0 it stores the rest of the request.
var (
	rcvOutOfOrder = testenv.Counter{Name: "prometheus_tsdb_out_of_order_samples_total"}
	rcvRejected   = testenv.Counter{Name: "prometheus_http_requests_total", Labels: `handler="/api/v1/write" code="400"`}
)

// receiver is the test's view of the stack, all of it through the
// receiver's published port: the samples the agents remote wrote (job
// farm), the agents' own metrics, which it scrapes (job shoal), and its
// own counters.
type receiver struct {
	*testenv.Receiver
	hc *http.Client

	mu  sync.Mutex
	lag []lagPoint // every lag reading, in time order
}

type lagPoint struct {
	t   time.Time
	lag time.Duration
}

func newReceiver(url string) (*receiver, error) {
	r, err := testenv.ReceiverAt(url)
	if err != nil {
		return nil, err
	}
	return &receiver{Receiver: r, hc: &http.Client{Timeout: 10 * time.Second}}, nil
}

func (r *receiver) close() {
	_ = r.Stop() // closes idle connections; the server is not ours to stop
	r.hc.CloseIdleConnections()
}

// counters reads the receiver's out-of-order and 400 counters.
func (r *receiver) counters(ctx context.Context) (ooo, rejected float64, err error) {
	m, err := testenv.FetchCounters(ctx, r.hc, r.URL+"/metrics", []testenv.Counter{rcvOutOfOrder, rcvRejected})
	return m[rcvOutOfOrder], m[rcvRejected], err
}

// converged returns nil once the receiver's latest scrape of every agent
// shows n active members and nothing else, agreement on the ring, and the
// targets owned once in all: the fleet has settled on n agents. With a
// non-zero startedAfter, every agent must also have started after it (a
// rolling update has replaced them all).
func (r *receiver) converged(ctx context.Context, n, targets int, startedAfter time.Time) error {
	now := time.Now()
	if !startedAfter.IsZero() {
		got, err := r.Query(ctx, fmt.Sprintf(`count(process_start_time_seconds{job="shoal"} > %d)`, startedAfter.Unix()), now)
		if err != nil {
			return err
		}
		if len(got) != 1 || int(got[0].V) != n {
			return fmt.Errorf("not every agent was replaced yet (%v of %d started after %s)", got, n, startedAfter.Format(time.TimeOnly))
		}
	}
	active, err := r.Query(ctx, `shoal_cluster_peers{job="shoal",state="active"}`, now)
	if err != nil {
		return err
	}
	if len(active) != n {
		return fmt.Errorf("%d agents scraped, want %d", len(active), n)
	}
	for _, s := range active {
		if int(s.V) != n {
			return fmt.Errorf("%s sees %v active members, want %d", s.Labels["instance"], s.V, n)
		}
	}
	others, err := r.Query(ctx, `sum(shoal_cluster_peers{job="shoal",state!="active"})`, now)
	if err != nil {
		return err
	}
	if len(others) == 1 && others[0].V != 0 {
		return fmt.Errorf("agents still list %v members joining or leaving", others[0].V)
	}
	agree, err := r.Query(ctx, `min(shoal_cluster_peers_agree{job="shoal"})`, now)
	if err != nil {
		return err
	}
	if len(agree) != 1 || agree[0].V != 1 {
		return fmt.Errorf("agents do not agree on the ring (%v)", agree)
	}
	owned, err := r.Query(ctx, `sum(shoal_targets_owned{job="shoal"})`, now)
	if err != nil {
		return err
	}
	if len(owned) != 1 || int(owned[0].V) != targets {
		return fmt.Errorf("agents own %v targets in all, want %d", owned, targets)
	}
	return nil
}

// waitConverged polls converged every second.
func (r *receiver) waitConverged(ctx context.Context, timeout time.Duration, n, targets int, startedAfter time.Time) error {
	return e2e.Poll(ctx, timeout, time.Second, func(ctx context.Context) error { return r.converged(ctx, n, targets, startedAfter) })
}

// pollLag reads, every second until ctx ends, how far behind the receiver
// is: now minus the newest sample of the target that is furthest behind.
// Normally that is up to one scrape interval plus the batch deadline; a
// held delivery (a handoff waiting for a previous owner) shows as more.
func (r *receiver) pollLag(ctx context.Context, selector string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		got, err := r.Query(ctx, fmt.Sprintf("max(time() - timestamp(%s))", selector), now)
		if err != nil || len(got) != 1 {
			continue
		}
		r.mu.Lock()
		r.lag = append(r.lag, lagPoint{t: now, lag: time.Duration(got[0].V * float64(time.Second))})
		r.mu.Unlock()
	}
}

// maxLag is the largest lag read in (start, end].
func (r *receiver) maxLag(start, end time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m time.Duration
	for _, p := range r.lag {
		if p.t.After(start) && !p.t.After(end) {
			m = max(m, p.lag)
		}
	}
	return m
}

// increase sums, over every series of selector (a counter of the agents,
// scraped by the receiver), how much it rose in (start, end]. An agent that
// started in the window counts from zero; a restart within a series (an IP
// reused) counts from zero again. Increments after an agent's last scrape
// are missed, so the result is a lower bound.
func (r *receiver) increase(ctx context.Context, selector string, start, end time.Time, scrape time.Duration) (float64, error) {
	series, err := r.RawSamples(ctx, selector, start.Add(-2*scrape), end)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		prev := 0.0
		if !s.Points[0].T.After(start.Add(scrape)) {
			prev = s.Points[0].V // it ran before the window
		}
		for _, p := range s.Points {
			if p.V < prev {
				prev = 0
			}
			sum += p.V - prev
			prev = p.V
		}
	}
	return sum, nil
}

// phase is one step of the test with what was measured over its window.
type phase struct {
	name     string
	replicas int
	// start, end bound the window; phases are contiguous.
	start, end time.Time
	// swarm is how long the docker command took (Swarm converged);
	// converge until the receiver saw the agents settled.
	swarm, converge time.Duration

	targets, samples, gapTargets, missing, dups int
	maxGap, maxLag                              time.Duration
	rcvOOO, rcvRejected                         float64
	movedIn, movedOut, holds, abandoned, failed float64
}

// moves is the larger of the moved-in and moved-out counters: an agent
// that starts counts its first share as neither, and one that stops may
// not be scraped after its last moves.
func (p phase) moves() float64 { return max(p.movedIn, p.movedOut) }

// measure fills in what the receiver stored for the phase's window.
// Call it once every sample up to the last phase's end has arrived.
func (p *phase) measure(ctx context.Context, r *receiver, instances []string, interval, scrape time.Duration) error {
	samples, err := e2e.Collect(ctx, r.Receiver, `farm_scrapes_total{job="farm"}`, p.start, p.end)
	if err != nil {
		return err
	}
	w := e2e.Window{Start: p.start, End: p.end, Interval: interval}
	for _, st := range e2e.AnalyzeAll(samples, instances, w, true) {
		if st.Samples > 0 {
			p.targets++
		}
		p.samples += st.Samples
		if st.Gaps > 0 {
			p.gapTargets++
		}
		p.missing += st.Missing
		p.dups += st.Duplicates()
		p.maxGap = max(p.maxGap, st.MaxGap)
	}
	p.maxLag = r.maxLag(p.start, p.end)
	for _, c := range []struct {
		selector string
		into     *float64
	}{
		{`shoal_targets_moved_total{job="shoal",direction="in"}`, &p.movedIn},
		{`shoal_targets_moved_total{job="shoal",direction="out"}`, &p.movedOut},
		{`shoal_delivery_handoff_holds_total{job="shoal"}`, &p.holds},
		{`shoal_delivery_handoff_holds_total{job="shoal",result="abandoned"}`, &p.abandoned},
		{`prometheus_remote_storage_samples_failed_total{job="shoal"}`, &p.failed},
	} {
		if *c.into, err = r.increase(ctx, c.selector, p.start, p.end, scrape); err != nil {
			return err
		}
	}
	return nil
}

// table formats the phases with a legend.
func table(phases []phase, interval time.Duration) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\treplicas\twindow_s\tswarm_s\tconverge_s\ttargets\tsamples\tmax_gap_s\tgap>1.5iv\tmissing\tdup\trcv_ooo\trcv_400\tmoves\tholds\tabandoned\tshoal_failed\tmax_lag_s\t")
	for _, p := range phases {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.1f\t%d\t%d\t%.2f\t%d\t%d\t%d\t%g\t%g\t%g\t%g\t%g\t%g\t%.1f\t\n",
			p.name, p.replicas, p.end.Sub(p.start).Seconds(), p.swarm.Seconds(), p.converge.Seconds(), p.targets, p.samples,
			p.maxGap.Seconds(), p.gapTargets, p.missing, p.dups, p.rcvOOO, p.rcvRejected, p.moves(), p.holds, p.abandoned, p.failed, p.maxLag.Seconds())
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, `interval %s. swarm_s: the docker command until it returned (Swarm converged, after update_config.monitor); converge_s: the
command until the receiver's scrape (every 2 s) of every agent showed the new count active, agreeing, owning every target once
(for the update: every agent replaced)
max_gap_s: largest distance between two samples of a target (window edges count); gap>1.5iv: targets that missed a scrape
missing: slots without a sample; dup: samples < 0.5 iv apart or a counter not rising; rcv_ooo / rcv_400: the receiver's
out-of-order samples / remote-write 400 answers; moves: targets moved (agents' counters, a lower bound); holds / abandoned:
handoff holds / holds given up after --storage.remote.handoff-wait; max_lag_s: largest now - newest sample of the target
furthest behind at the receiver, read every second (normally up to one interval plus the batch deadline)
`, interval)
	return b.String()
}

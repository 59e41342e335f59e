package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Options size a scenario.
type Options struct {
	// Targets is the number of (healthy) farm targets.
	Targets int
	// Sizes, when set, gives the targets unequal numbers of series
	// (farm.Config.Sizes).
	Sizes []int
	// Agents is the number of agents the fleet starts with.
	Agents int
	// Interval is the scrape interval.
	Interval time.Duration
	// FlushDeadline is --storage.remote.flush-deadline: short enough that
	// an agent stopped while the receiver is down exits within the outage.
	FlushDeadline time.Duration
	// Args are extra shoal flags for every agent of the scenario.
	Args []string
	// RemoteWriteV1 sends remote write 1.0 instead of 2.0. A Prometheus
	// receiver rejects a whole 1.0 request for one out-of-order sample, so
	// one such sample loses the batch's other series too; with 2.0 it
	// rejects only that sample.
	RemoteWriteV1 bool
	// FirstPlanInWindow starts the measured window once the agents have
	// converged, before load-aware placement (the default) has settled, so
	// that the leader's first plan falls inside it (the placement
	// scenarios). Otherwise Start also waits until placement has settled
	// (e2e.WaitSettled): the window then holds only the moves the scenario
	// causes, and the plans those bring.
	FirstPlanInWindow bool
	// Logf receives the scenario's progress, timeline and findings (a
	// test's t.Logf); nil discards them.
	Logf func(format string, args ...any)
}

// counterSelector is the farm job's counter, which rises by 1 per scrape.
const counterSelector = `farm_scrapes_total{job="` + e2e.DefaultJob + `"}`

// rcvRejectLog is what the receiver logs for each rejected sample of a
// remote-write request (storage/remote/write_handler.go): its log survives
// its restarts, unlike its counters.
const rcvRejectLog = "Out of order sample from remote write"

// Fleet is one scenario's environment and agents. Its methods are not safe
// for concurrent use: call them from one goroutine.
type Fleet struct {
	Name string
	Env  *e2e.Env
	Opts Options
	// Agents are the agents that should be running and active; Step waits
	// until exactly they agree.
	Agents []*e2e.Agent

	logf    func(format string, args ...any)
	healthy []string
	all     []*e2e.Agent // every agent ever started, for their logs
	seq     int
	obs     *observer
	begin   time.Time // start of the measured window
	marks   []mark
	// base are the counters and rejected-sample log lines at the window
	// start: the agents' start-up (each scrapes everything until it has
	// joined) is not measured.
	base        map[Counter]float64
	baseRejects int
	steps       []StepResult
}

// mark is an event of the scenario, for the timeline Finish logs.
type mark struct {
	at   time.Time
	what string
}

// Mark records an event (e.g. "receiver down") for the timeline.
func (f *Fleet) Mark(what string) { f.marks = append(f.marks, mark{time.Now(), what}) }

// StepResult is how long one fleet change took.
type StepResult struct {
	What string
	// Action is how long the change itself took (a Stop includes the
	// handoff and the flush).
	Action time.Duration
	// Agree is from the start of the change until every agent listed
	// exactly Fleet.Agents as active members and agreed on the ring.
	Agree time.Duration
	// Converge is until, in addition, every agent scraped exactly its
	// share (e2e.Converged).
	Converge time.Duration
}

// Start starts a fresh environment in g with opts.Targets healthy targets,
// a strict receiver and opts.Agents agents that share series (no per-agent
// label), waits until they converge and lets one interval pass; the
// measured window starts then. Closing g stops everything, the partial
// environment too when Start fails.
func Start(ctx context.Context, g *testenv.Group, name string, opts Options) (*Fleet, error) {
	env, err := e2e.StartEnv(ctx, g, e2e.EnvOptions{Targets: opts.Targets, Sizes: opts.Sizes})
	if err != nil {
		return nil, fmt.Errorf("fleet %s: %w", name, err)
	}
	f := &Fleet{Name: name, Env: env, Opts: opts, logf: opts.Logf, healthy: env.Instances(true), obs: newObserver(env.Receiver.URL)}
	if f.logf == nil {
		f.logf = func(string, ...any) {}
	}
	f.Agents, err = env.StartCluster(ctx, opts.Agents, "fleet", func(_ int, o *e2e.AgentOptions) { f.configure(o) })
	if err != nil {
		return nil, fmt.Errorf("fleet %s: start %d agents: %w", name, opts.Agents, err)
	}
	f.seq = opts.Agents
	f.all = slices.Clone(f.Agents)
	for _, a := range f.Agents {
		f.obs.add(a)
	}
	g.OnClose(func() error { f.obs.stop(); return nil })
	if _, err = e2e.WaitConverged(ctx, f.Agents, f.healthy); err != nil {
		return nil, fmt.Errorf("fleet %s: %w", name, err)
	}
	if !opts.FirstPlanInWindow {
		_, st, err := e2e.WaitSettled(ctx, f.Agents, f.healthy)
		if err != nil {
			return nil, fmt.Errorf("fleet %s: %w", name, err)
		}
		f.logf("fleet: %s: placement settled before the window: %s", name, st)
	}
	f.obs.start()
	f.Settle(1)
	f.begin = time.Now()
	f.obs.pollCounters(ctx)
	f.base = map[Counter]float64{}
	for _, c := range []Counter{rcvOutOfOrder, rcvRejected, shoalFailed, shoalDropped} {
		f.base[c] = f.obs.totals.total(c)
	}
	if log, err := os.ReadFile(env.Receiver.LogPath); err == nil {
		f.baseRejects = strings.Count(string(log), rcvRejectLog)
	}
	return f, nil
}

func (f *Fleet) configure(o *e2e.AgentOptions) {
	o.NoAgentLabel = true
	o.Config.ScrapeInterval = f.Opts.Interval
	if !f.Opts.RemoteWriteV1 {
		o.Config.ProtobufMessage = "io.prometheus.write.v2.Request"
	}
	o.ExtraArgs = append(o.ExtraArgs, "--storage.remote.flush-deadline="+f.Opts.FlushDeadline.String())
	o.ExtraArgs = append(o.ExtraArgs, f.Opts.Args...)
}

// Settle lets n scrape intervals pass.
func (f *Fleet) Settle(n int) {
	time.Sleep(time.Duration(n) * f.Opts.Interval)
}

// Sleep lets d pass.
func (f *Fleet) Sleep(d time.Duration) { time.Sleep(d) }

// Step runs one fleet change and waits until Agents agree and converge. It
// returns an error when the change fails or when they do not converge
// within e2e.ConvergeTimeout.
func (f *Fleet) Step(ctx context.Context, what string, action func() error) (StepResult, error) {
	began := time.Now()
	f.Mark(what)
	if err := action(); err != nil {
		return StepResult{}, fmt.Errorf("%s: %s: %w", f.Name, what, err)
	}
	r := StepResult{What: what, Action: time.Since(began)}
	err := e2e.Poll(ctx, e2e.ConvergeTimeout, 100*time.Millisecond, func(ctx context.Context) error {
		if r.Agree == 0 {
			if err := f.agree(ctx); err != nil {
				return err
			}
			r.Agree = time.Since(began)
		}
		if _, err := e2e.Converged(ctx, f.Agents, f.healthy); err != nil {
			return err
		}
		r.Converge = time.Since(began)
		return nil
	})
	if err != nil {
		if disagree := f.agree(ctx); disagree != nil {
			err = fmt.Errorf("%w (and they disagree: %w)", err, disagree)
		}
		return r, fmt.Errorf("%s: %s: no convergence: %w", f.Name, what, err)
	}
	f.steps = append(f.steps, r)
	f.logf("fleet: %s: %s: action %.1fs, agree %.1fs, converged %.1fs", f.Name, what, r.Action.Seconds(), r.Agree.Seconds(), r.Converge.Seconds())
	return r, nil
}

// agree returns nil when every agent in Agents lists exactly Agents as its
// active members and agrees with them on the ring.
func (f *Fleet) agree(ctx context.Context) error {
	names := f.names()
	for _, a := range f.Agents {
		m, err := a.Members(ctx)
		if err != nil {
			return err
		}
		active := m.Active()
		if !m.Agree || !slices.Equal(active, names) {
			return fmt.Errorf("%s: active %v agree=%v disagree=%v, want %v", a.Name, active, m.Agree, m.Disagree, names)
		}
	}
	return nil
}

func (f *Fleet) names() []string {
	out := make([]string, 0, len(f.Agents))
	for _, a := range f.Agents {
		out = append(out, a.Name)
	}
	slices.Sort(out)
	return out
}

// Add starts a new agent joining the current ones; call it inside Step.
func (f *Fleet) Add(ctx context.Context) (*e2e.Agent, error) {
	o := e2e.AgentOptions{Name: fmt.Sprintf("fleet-%d", f.seq), Config: f.Env.PromConfig()}
	f.seq++
	for _, a := range f.Agents {
		o.Join = append(o.Join, a.GossipAddr)
	}
	f.configure(&o)
	a, err := e2e.NewAgent(f.Env.Group, o)
	if err != nil {
		return nil, err
	}
	f.all = append(f.all, a)
	f.obs.add(a)
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	f.Agents = append(f.Agents, a)
	return a, nil
}

// Remove stops a (SIGTERM: it hands its targets over) and drops it from
// Agents; call it inside Step. The error is the stop's: a failed handoff
// or flush, or an exit status other than 0.
func (f *Fleet) Remove(a *e2e.Agent) error {
	f.Agents = slices.DeleteFunc(f.Agents, func(b *e2e.Agent) bool { return b == a })
	return a.Stop()
}

// Restart stops a as Remove does and starts it again with the same name,
// ports and data directory; call it inside Step.
func (f *Fleet) Restart(ctx context.Context, a *e2e.Agent) error { return a.Restart(ctx) }

// Kill kills a (SIGKILL) and drops it from Agents; call it inside Step.
func (f *Fleet) Kill(a *e2e.Agent) error {
	f.Agents = slices.DeleteFunc(f.Agents, func(b *e2e.Agent) bool { return b == a })
	return a.Kill()
}

// Rejoin starts a removed or killed agent again with its name and data
// directory; call it inside Step.
func (f *Fleet) Rejoin(ctx context.Context, a *e2e.Agent) error {
	a.Opts.Join = a.Opts.Join[:0]
	for _, b := range f.Agents {
		a.Opts.Join = append(a.Opts.Join, b.GossipAddr)
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	f.Agents = append(f.Agents, a)
	return nil
}

// crashMarks are what a Go process logs when it panics, dies or races.
var crashMarks = []string{"panic:", "fatal error:", "WARNING: DATA RACE"}

// Crashes returns an error naming every agent the scenario started whose
// log shows a panic, a fatal error or a data race, or nil.
func (f *Fleet) Crashes() error {
	var errs []error
	for _, a := range f.all {
		if log, err := os.ReadFile(a.LogPath); err == nil {
			for _, bad := range crashMarks {
				if strings.Contains(string(log), bad) {
					errs = append(errs, fmt.Errorf("%s: agent %s logged %q (%s)", f.Name, a.Name, bad, a.LogPath))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Finish lets a few intervals pass after the last change, waits until the
// receiver has every target's samples up to then and measures the window.
// The row lists the targets not scraped at the end (Unscraped), which
// should be none; Crashes tells whether an agent crashed. The error says
// why the window could not be measured.
func (f *Fleet) Finish(ctx context.Context) (Row, error) {
	f.Settle(3)
	end := time.Now()
	if _, err := e2e.WaitIngested(ctx, f.Env.Receiver, counterSelector, f.healthy, end); err != nil {
		return Row{}, fmt.Errorf("%s: %w", f.Name, err)
	}
	f.obs.stop()

	iv := f.Opts.Interval
	w := e2e.Window{Start: f.begin, End: end, Interval: iv}
	// From a few intervals before the window: the last sample before it is
	// the baseline of a gap at its start.
	samples, err := e2e.Collect(ctx, f.Env.Receiver, counterSelector, w.Start.Add(-3*iv), w.End)
	if err != nil {
		return Row{}, fmt.Errorf("%s: collect: %w", f.Name, err)
	}
	stats := e2e.AnalyzeAll(samples, f.healthy, w, true)
	logged := 0
	r := Row{Scenario: f.Name, Targets: len(f.healthy), Interval: iv, Window: w.End.Sub(w.Start)}
	for _, st := range stats {
		r.MaxGap = max(r.MaxGap, st.MaxGap)
		if float64(st.MaxGap) > 1.5*float64(iv) {
			r.GapTargets++
		}
		if float64(st.MaxGap) > 2.5*float64(iv) {
			r.BigGapTargets++
		}
		r.Duplicates += st.Duplicates()
		r.Missing += st.Missing
		r.Fenced += st.Fenced
		if st.Duplicates() > 0 && logged < 5 {
			logged++
			f.logf("fleet: %s: %s: %d duplicate samples (%d close, %d repeated values): %s", f.Name, st.Instance, st.Duplicates(), st.Close, st.Repeats, duplicatePairs(samples[st.Instance], w))
		}
	}
	// The last intervals: every target scraped again.
	tail := e2e.Window{Start: end.Add(-2 * iv), End: end, Interval: iv}
	for _, st := range e2e.AnalyzeAll(samples, f.healthy, tail, true) {
		if st.Samples == 0 {
			r.Unscraped = append(r.Unscraped, st.Instance)
		}
	}
	stale, err := f.Env.Receiver.StaleMarkers(ctx, w.Start, w.End, labels.MustNewMatcher(labels.MatchEqual, "job", e2e.DefaultJob))
	if err != nil {
		return Row{}, fmt.Errorf("%s: staleness markers: %w", f.Name, err)
	}
	for i, s := range stale {
		r.Stale += len(s.Points)
		if i < 5 {
			f.logf("fleet: %s: %d staleness marker(s) on %s, the first at %+.1fs", f.Name, len(s.Points), s, s.Points[0].T.Sub(w.Start).Seconds())
		}
	}
	r.Moved, r.Moves, r.MaxDouble = f.obs.ownership()
	r.RcvOutOfOrder = f.obs.totals.total(rcvOutOfOrder) - f.base[rcvOutOfOrder]
	r.RcvRejected = f.obs.totals.total(rcvRejected) - f.base[rcvRejected]
	r.ShoalFailed = f.obs.totals.total(shoalFailed) - f.base[shoalFailed]
	r.ShoalDropped = f.obs.totals.total(shoalDropped) - f.base[shoalDropped]
	if log, err := os.ReadFile(f.Env.Receiver.LogPath); err == nil {
		r.RcvRejectLogs = strings.Count(string(log), rcvRejectLog) - f.baseRejects
		f.logRejected(string(log), w.Start)
	}
	if r.RcvOutOfOrder > 0 || r.RcvRejected > 0 || r.Missing > 0 {
		f.logDelivery()
	}
	for _, s := range f.steps {
		r.Agree = max(r.Agree, s.Agree)
		r.Converge = max(r.Converge, s.Converge)
	}
	f.logPlans(w.Start)
	f.logf("fleet: %s: timeline (s from window start): %s", f.Name, f.timeline(samples, w))
	f.logf("FLEET %s", r.KeyValues())
	return r, nil
}

// timeline lists the scenario's events and, per second of the window, how
// many targets had a missed scrape (a gap above 1.5 intervals) starting
// then, with the counter values lost in those gaps: where the gaps are.
func (f *Fleet) timeline(samples e2e.Samples, w e2e.Window) string {
	var parts []string
	for _, m := range f.marks {
		parts = append(parts, fmt.Sprintf("%+.1f %s", m.at.Sub(w.Start).Seconds(), m.what))
	}
	type bucket struct{ targets, lost int }
	gaps := map[int]*bucket{}
	for _, inst := range f.healthy {
		prevT, prevV := w.Start, -1.0
		for _, s := range append(slices.Clone(samples[inst]), e2e.Sample{T: w.End, V: -1}) {
			if !s.T.After(w.Start) {
				prevV = s.V // the baseline before the window
				continue
			}
			if float64(s.T.Sub(prevT)) > 1.5*float64(w.Interval) {
				sec := int(prevT.Sub(w.Start).Seconds())
				b := gaps[sec]
				if b == nil {
					b = &bucket{}
					gaps[sec] = b
				}
				b.targets++
				if prevV >= 0 && s.V > prevV+1 {
					b.lost += int(s.V-prevV) - 1
				}
			}
			prevT, prevV = s.T, s.V
		}
	}
	for _, sec := range slices.Sorted(maps.Keys(gaps)) {
		parts = append(parts, fmt.Sprintf("%+d gap x%d (values lost %d)", sec, gaps[sec].targets, gaps[sec].lost))
	}
	return strings.Join(parts, "; ")
}

// rejectedShown is how many of the receiver's rejected samples Finish logs.
const rejectedShown = 5

// logRejected logs the first rejected samples from the receiver's log (the
// series, the reason and the sample's timestamp relative to the window
// start): which series collide tells where out-of-order samples come from.
func (f *Fleet) logRejected(log string, start time.Time) {
	tsRe := regexp.MustCompile(`timestamp=(\d+)`)
	shown := 0
	for line := range strings.Lines(log) {
		if !strings.Contains(line, rcvRejectLog) || shown == rejectedShown {
			continue
		}
		m := tsRe.FindStringSubmatch(line)
		rel := ""
		if m != nil {
			ms, err := strconv.ParseInt(m[1], 10, 64)
			if err == nil && time.UnixMilli(ms).Before(start) {
				continue // the agents' start-up
			}
			if err == nil {
				rel = fmt.Sprintf(" (sample at %+.3fs from window start)", time.UnixMilli(ms).Sub(start).Seconds())
			}
		}
		shown++
		f.logf("fleet: %s: receiver rejected: %s%s", f.Name, strings.TrimSpace(line), rel)
	}
}

// deliveryLogMarks are what the agents log about holding, or not holding,
// delivery for a previous owner, and about refused requests: why samples
// were lost or refused.
var deliveryLogMarks = []string{"previous owner", "receiver refused", "are dropped"}

// deliveryLogShown bounds the lines logDelivery shows per agent.
const deliveryLogShown = 12

// logDelivery logs, per agent the scenario started, its log lines about
// handoff holds and refused requests.
func (f *Fleet) logDelivery() {
	f.agentLogLines(deliveryLogMarks, deliveryLogShown, func(a *e2e.Agent, line string) bool {
		f.logf("fleet: %s: %s: %s", f.Name, a.Name, line)
		return true
	})
}

// agentLogLines calls show, per agent the scenario started, with each line
// of its log (trimmed) that contains one of marks, until show has accepted
// limit of them for that agent.
func (f *Fleet) agentLogLines(marks []string, limit int, show func(a *e2e.Agent, line string) bool) {
	for _, a := range f.all {
		log, err := os.ReadFile(a.LogPath)
		if err != nil {
			continue
		}
		shown := 0
		for line := range strings.Lines(string(log)) {
			if shown == limit {
				break
			}
			if slices.ContainsFunc(marks, func(m string) bool { return strings.Contains(line, m) }) && show(a, strings.TrimSpace(line)) {
				shown++
			}
		}
	}
}

// planLogMarks are what the agents log about load-aware plans: when the
// leader published one, when each agent installed it (or failed to read it)
// and when its scrape loops moved, to set beside the gaps of the timeline.
var planLogMarks = []string{"plan published", "plan installed", "cannot read the cluster's newest plan", "targets moved"} // "plan installed late" too

// planLogShown bounds the lines logPlans shows per agent.
const planLogShown = 40

// logPlans logs, per agent the scenario started, its log lines about plans
// after start, with their time in seconds from start.
func (f *Fleet) logPlans(start time.Time) {
	tsRe, atRe := regexp.MustCompile(`time=(\S+)`), regexp.MustCompile(` at=(\S+)`)
	f.agentLogLines(planLogMarks, planLogShown, func(a *e2e.Agent, line string) bool {
		rel := "?"
		if m := tsRe.FindStringSubmatch(line); m != nil {
			if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				if t.Before(start) {
					return false
				}
				rel = fmt.Sprintf("%+.3f", t.Sub(start).Seconds())
			}
		}
		if m := atRe.FindStringSubmatch(line); m != nil {
			if t, err := time.Parse(time.RFC3339Nano, strings.Trim(m[1], `"`)); err == nil {
				rel += fmt.Sprintf(" (in force at %+.3f)", t.Sub(start).Seconds())
			}
		}
		f.logf("fleet: %s: %s at %s: %s", f.Name, a.Name, rel, line)
		return true
	})
}

// duplicatePairs lists, for the log, the consecutive samples of a target
// closer than half an interval or whose counter did not rise: seconds from
// the window's start and values.
func duplicatePairs(ss []e2e.Sample, w e2e.Window) string {
	var b strings.Builder
	for i := 1; i < len(ss) && b.Len() < 300; i++ {
		a, c := ss[i-1], ss[i]
		if c.T.Sub(a.T) < w.Interval/2 || c.V <= a.V {
			fmt.Fprintf(&b, "[%+.3fs=%g %+.3fs=%g] ", a.T.Sub(w.Start).Seconds(), a.V, c.T.Sub(w.Start).Seconds(), c.V)
		}
	}
	return b.String()
}

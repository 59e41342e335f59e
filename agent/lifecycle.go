package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Bounds of the stop stages that have no flag of their own.
const (
	// scrapeStopTimeout covers a scrape in flight: the scrape manager waits
	// for every loop's current scrape, bounded by its scrape timeout.
	scrapeStopTimeout = time.Minute
	// flushSlack is added to --storage.remote.flush-deadline: closing the WAL
	// and the queues takes a moment after the flush itself.
	flushSlack = 5 * time.Second
	// deregisterTimeout bounds the Consul deregistration; if it fails the
	// TTL check expires the registration.
	deregisterTimeout = 5 * time.Second
	// leaveTimeout covers memberlist's Leave (its broadcast waits up to
	// gossip's own leave timeout) and Shutdown.
	leaveTimeout = 10 * time.Second
	// maxQuits is how many stop requests wait to be handled: more than the
	// stages, so none is lost while a stage runs.
	maxQuits = 16
)

// handoffSettle is how long a leaving agent keeps scraping after the
// handoff instant: a scrape of its last slot that started just before the
// instant may still be running.
const handoffSettle = 2 * time.Second

// Quit asks Run to stop, as SIGTERM does. The first call starts the stop
// sequence; each later call cuts the stage then running short, so a second
// signal turns a slow handoff or flush into a quick exit. It never blocks.
func (a *Agent) Quit() {
	select {
	case a.quit <- struct{}{}:
	default:
	}
}

// Run starts every component, each under its own context, and blocks until
// ctx is cancelled, Quit is called or a component fails. Then it walks the
// stop stages in order (see stopStages). It returns nil after a clean stop
// and the component's error after a failure.
func (a *Agent) Run(ctx context.Context) error {
	failed := make(chan *actor, 10)
	// Web first, so that probes answer (503) while the agent joins.
	web := a.start("web", a.web.Run, failed)
	// The page's history from the start, so its first interval begins now.
	hist := a.start("status history", a.runHistory, failed)
	node := a.start("gossip", a.node.Run, failed)
	disc := a.start("discovery", a.disc.Run, failed)
	scrape := a.start("scrape", a.scraper.Run, failed)
	agree := a.start("discovery agreement", a.discAgree.run, failed)
	defer func() { _ = agree.stop(context.Background()) }()
	// The planner outlives the stop stages: a leaving leader's plans stay in
	// force, and it keeps following until it is gone.
	plan := a.start("planner", a.planner.run, failed)
	defer func() { _ = plan.stop(context.Background()) }()
	quar := a.start("quarantine", a.quar.run, failed)
	defer func() { _ = quar.stop(context.Background()) }()
	var reg, peers *actor
	if a.regist != nil {
		reg = a.start("consul registration", a.runRegistration, failed)
	}
	if len(a.peerWatch) > 0 {
		peers = a.start("consul peer watch", a.watchPeers, failed)
	}
	if a.consulToken != nil {
		// Stopped last: the deregistration still needs the token.
		token := a.start("consul token", a.consulToken.Run, failed)
		defer func() { _ = token.stop(context.Background()) }()
	}

	var cause error
	select {
	case <-ctx.Done():
		a.logger.Info("received stop signal, shutting down; a second one cuts each stage short")
	case <-a.quit:
		a.logger.Info("stop requested, shutting down; a second request cuts each stage short")
	case f := <-failed:
		cause = f.err
		a.logger.Error("component failed, shutting down", "component", f.name, "err", f.err)
	}
	a.stoppingOnce.Do(func() { close(a.stopping) })
	a.walk(a.stopStages(cause != nil, web, node, disc, scrape, reg, peers))
	// The page charted the stop until its last stage.
	_ = hist.stop(context.Background())
	if cause != nil {
		return cause
	}
	a.logger.Info("agent stopped")
	return nil
}

// stage is one step of the stop sequence: stop must return when ctx is done.
type stage struct {
	name     string
	deadline time.Duration
	stop     func(ctx context.Context) error
}

// stopStages is the stop sequence, in order:
//
//	announce       announce leaving with the instant the targets switch to
//	               their new owners and scrape until then, so every slot has
//	               one writer (or, with a restart grace, announce that peers
//	               hold them); skipped after a failure
//	stop scraping  scrape loops stopped on shutdown write no staleness
//	               markers; discovery and the Consul peer watch stop with them
//	flush          remote write sends what is queued, then the WAL closes
//	deregister     leave Consul
//	leave          leave memberlist
//	http           last, so that /-/ready says 503 to the end
func (a *Agent) stopStages(failed bool, web, node, disc, scrape, reg, peers *actor) []stage {
	announce := a.handOver
	deadline := a.opts.Stop.HandoffTimeout + a.node.HandoffLead() + handoffSettle
	if a.opts.Stop.RestartGrace > 0 {
		announce, deadline = a.announceRestart, a.opts.Stop.HandoffTimeout
	}
	if failed {
		announce = func(context.Context) error {
			return errors.New("skipped after a failure: peers take over when they notice this agent is gone")
		}
	}
	return []stage{
		{"announce", deadline, announce},
		{"stop scraping", scrapeStopTimeout, func(ctx context.Context) error {
			return errors.Join(scrape.stop(ctx), disc.stop(ctx), peers.stop(ctx))
		}},
		{"flush", a.opts.Storage.FlushDeadline + flushSlack, a.flush},
		{"deregister", deregisterTimeout, func(ctx context.Context) error { return a.deregister(ctx, reg) }},
		{"leave", leaveTimeout, node.stop},
		{"http", webShutdownTimeout + time.Second, web.stop},
	}
}

// walk runs the stages in order, each under its deadline; a stop request
// that arrives during a stage cuts that stage short.
func (a *Agent) walk(stages []stage) {
	for i, s := range stages {
		logger := a.logger.With("stage", s.name, "step", fmt.Sprintf("%d/%d", i+1, len(stages)))
		logger.Info("stop stage", "deadline", s.deadline)
		ctx, cancel := context.WithTimeout(context.Background(), s.deadline)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-a.quit:
				logger.Warn("another stop request: cutting this stage short")
				cancel()
			case <-ctx.Done():
			}
		}()
		err := s.stop(ctx)
		cancel()
		<-watched
		if err != nil {
			logger.Warn("stop stage did not complete", "err", err)
		}
	}
}

// actor is a running component.
type actor struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// start runs a component under its own context. If it returns before it is
// stopped, it is sent on failed (whose capacity must cover every actor).
func (a *Agent) start(name string, run func(context.Context) error, failed chan<- *actor) *actor {
	ctx, cancel := context.WithCancel(context.Background())
	c := &actor{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		err := run(ctx)
		stopped := ctx.Err() != nil
		if err == nil && !stopped {
			err = errors.New("stopped unexpectedly")
		}
		if err != nil {
			c.err = fmt.Errorf("%s: %w", name, err)
		}
		close(c.done)
		if !stopped {
			failed <- c
		}
	}()
	return c
}

// stop cancels the component and waits for it until ctx is done. A nil
// actor (a component not configured) stops at once.
func (c *actor) stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop: %w", c.name, ctx.Err())
	}
}

// handOver announces the instant at which this agent's targets move to its
// peers (now plus the handoff lead) and keeps scraping until then, so every
// slot before it is this agent's and every slot after it the new owner's.
func (a *Agent) handOver(ctx context.Context) error {
	until := a.node.Now().Add(a.node.HandoffLead())
	a.logger.Info("announcing leave; peers take over this agent's targets at the handoff instant",
		"at", until, "timeout", a.opts.Stop.HandoffTimeout)
	hctx, cancel := context.WithTimeout(ctx, a.opts.Stop.HandoffTimeout)
	defer cancel()
	until, err := a.node.AnnounceLeaving(hctx, until)
	if err != nil {
		a.logger.Warn("not every peer acknowledged the leave; those that did not take over when they notice it", "err", err)
	}
	if until.IsZero() {
		a.logger.Info("this agent owned no targets (it had not finished joining): nothing to hand over")
		return nil
	}
	cctx, ccancel := context.WithDeadline(hctx, until)
	defer ccancel()
	if err := a.confirmHandoff(cctx); err != nil {
		a.logger.Warn("peers were not scraping every handed-off target at the handoff instant; their first slots may be missed", "err", err)
	}
	wait := until.Add(handoffSettle).Sub(a.node.Now())
	a.logger.Info("scraping until the handoff instant", "remaining", wait.Round(time.Millisecond))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped scraping %s before the handoff instant, those slots are lost: %w",
			until.Sub(a.node.Now()).Round(time.Millisecond), ctx.Err())
	}
}

// announceRestart announces that this agent is restarting: peers keep its
// targets unassigned for the restart grace, and the marker in the storage
// directory lets the next process take them back at once.
func (a *Agent) announceRestart(ctx context.Context) error {
	until := a.node.Now().Add(a.opts.Stop.RestartGrace)
	a.logger.Info("announcing a restart; peers hold this agent's targets until the grace ends",
		"until", until, "timeout", a.opts.Stop.HandoffTimeout)
	until, err := a.node.AnnounceLeaving(ctx, until)
	if err != nil {
		a.logger.Warn("not every peer acknowledged the restart; those that did not take the targets over when they notice it", "err", err)
	}
	if until.IsZero() {
		a.logger.Info("this agent owned no targets (it had not finished joining): peers hold nothing for it")
		return nil
	}
	if err := writeRestartMarker(a.opts.Storage.Path, a.opts.Gossip.Name, until); err != nil {
		return fmt.Errorf("the next start will rejoin with the handoff lead: %w", err)
	}
	return nil
}

// flush closes the storage: remote write sends what is queued for at most
// the flush deadline. Cut short, the close goes on in the background and
// what is unsent stays in the WAL.
func (a *Agent) flush(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- a.closeStorage() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("remote write still flushing, unsent samples stay in the WAL: %w", ctx.Err())
	}
}

// closeStorage flushes remote write and closes the WAL, once.
func (a *Agent) closeStorage() error {
	a.closeOnce.Do(func() { a.closeErr = a.store.Close() })
	return a.closeErr
}

// deregister stops renewing the Consul check and removes the registration.
func (a *Agent) deregister(ctx context.Context, reg *actor) error {
	if reg == nil {
		return nil
	}
	if err := reg.stop(ctx); err != nil {
		a.logger.Warn("consul registration stopped with an error", "err", err)
	}
	if err := a.regist.Deregister(ctx); err != nil {
		return fmt.Errorf("deregister from consul, the TTL check will expire the registration: %w", err)
	}
	return nil
}

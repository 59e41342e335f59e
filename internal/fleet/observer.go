package fleet

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
	"github.com/shoal-dev/shoal/internal/testenv"
)

const (
	// observeInterval is how often the observer asks every agent what it
	// scrapes; it is the resolution of the double-owner figure.
	observeInterval = 500 * time.Millisecond
	// countersEvery is how many observations pass between readings of the
	// counters on /metrics.
	countersEvery = 2
)

// observer polls the running agents in the background: which targets each
// scrapes (/api/v1/targets), to count ownership changes and the time a
// target spends with two scrapers, and their and the receiver's counters.
// Agents that do not answer are skipped: they are starting or stopping.
type observer struct {
	receiverURL string
	hc          *http.Client
	totals      *counterTotals

	mu     sync.Mutex
	agents []*e2e.Agent
	owner  map[string]string // last single owner of each target
	moves  map[string]int    // changes of single owner per target
	double map[string]time.Duration
	polls  int

	cancel context.CancelFunc
	done   chan struct{}
}

func newObserver(receiverURL string) *observer {
	return &observer{
		receiverURL: receiverURL,
		hc:          &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		totals:      newCounterTotals(),
		owner:       map[string]string{},
		moves:       map[string]int{},
		double:      map[string]time.Duration{},
	}
}

// start runs the polling goroutine until stop.
func (o *observer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel, o.done = cancel, make(chan struct{})
	go func() {
		defer close(o.done)
		tick := time.NewTicker(observeInterval)
		defer tick.Stop()
		for i := 0; ; i++ {
			o.pollOwnership(ctx)
			if i%countersEvery == 0 {
				o.pollCounters(ctx)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// stop ends the polling, reads the counters a last time and closes idle
// connections.
func (o *observer) stop() {
	if o.cancel != nil {
		o.cancel()
		<-o.done
		o.cancel = nil
	}
	o.pollCounters(context.Background())
	o.hc.CloseIdleConnections()
}

// add follows a new agent.
func (o *observer) add(a *e2e.Agent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !slices.Contains(o.agents, a) {
		o.agents = append(o.agents, a)
	}
}

func (o *observer) running() []*e2e.Agent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(o.agents), func(a *e2e.Agent) bool { return !a.Running() })
}

func (o *observer) pollOwnership(ctx context.Context) {
	own := map[string][]string{}
	for _, a := range o.running() {
		ts, err := a.ActiveTargets(ctx)
		if err != nil {
			continue
		}
		for _, t := range ts {
			own[t.Instance()] = append(own[t.Instance()], a.Name)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.polls++
	for inst, by := range own {
		switch len(by) {
		case 1:
			if prev, ok := o.owner[inst]; ok && prev != by[0] {
				o.moves[inst]++
			}
			o.owner[inst] = by[0]
		default:
			o.double[inst] += observeInterval
		}
	}
}

func (o *observer) pollCounters(ctx context.Context) {
	if vals, err := testenv.FetchCounters(ctx, o.hc, o.receiverURL+"/metrics", []Counter{rcvOutOfOrder, rcvRejected}); err == nil {
		o.totals.observe("receiver", vals)
	}
	for _, a := range o.running() {
		if vals, err := testenv.FetchCounters(ctx, o.hc, a.URL+"/metrics", []Counter{shoalFailed, shoalDropped}); err == nil {
			o.totals.observe(a.Name, vals)
		}
	}
}

// ownership returns the targets whose owner changed at least once, the
// number of changes, and the longest time a target had more than one
// scraper (to the observer's resolution).
func (o *observer) ownership() (moved, moves int, maxDouble time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range o.moves {
		if n > 0 {
			moved++
			moves += n
		}
	}
	for _, d := range o.double {
		maxDouble = max(maxDouble, d)
	}
	return moved, moves, maxDouble
}

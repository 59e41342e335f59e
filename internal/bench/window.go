package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

const (
	// deliverTimeout bounds how long a run may take, once started, until
	// every target's samples reach the receiver: discovery, the first
	// scrape and remote write's batch deadline (5 s), with headroom.
	deliverTimeout = 3 * time.Minute
	// drainTimeout bounds the wait, after the window, for the window's
	// samples to reach the receiver.
	drainTimeout = time.Minute
	// drainMargin is waited in addition once every target has a sample
	// after the window: remote write spreads one scrape's series over its
	// shards, which send independently.
	drainMargin = 2 * time.Second
	// queryTimeout bounds one query to the receiver.
	queryTimeout = time.Minute
	// rssEvery is how often resident memory is read during the window.
	rssEvery = time.Second
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// queryScalar evaluates a query that returns one sample (or none: 0).
func (b *Bench) queryScalar(ctx context.Context, q string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	s, err := b.rcv.Query(ctx, q, at)
	if err != nil {
		return 0, err
	}
	switch len(s) {
	case 0:
		return 0, nil
	case 1:
		return s[0].V, nil
	default:
		return 0, fmt.Errorf("query %q returned %d samples, want one", q, len(s))
	}
}

// waitFor polls cond every pollInterval until it returns true, the
// processes exit, or timeout passes; what describes the wait in errors.
func waitFor(ctx context.Context, timeout time.Duration, what string, procs []*subject, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		for _, p := range procs {
			if ex := p.Exited(); ex != nil {
				select {
				case <-ex:
					return fmt.Errorf("%s exited while waiting for %s; log tail:\n%s", p.name, what, p.LogTail())
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			}
			return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// waitDelivering waits until the receiver has an up == 1 sample of the
// run from every one of its targets.
func (b *Bench) waitDelivering(ctx context.Context, label string, targets int, procs []*subject) error {
	q := fmt.Sprintf(`count(up{%s=%q} == 1)`, RunLabel, label)
	return waitFor(ctx, deliverTimeout, fmt.Sprintf("%d targets of %s at the receiver", targets, label), procs,
		func(ctx context.Context) (bool, error) {
			n, err := b.queryScalar(ctx, q, time.Now())
			return err == nil && int(n) == targets, err
		})
}

// waitDrained waits until every target of the run has a sample scraped at
// or after end at the receiver, then drainMargin.
func (b *Bench) waitDrained(ctx context.Context, label string, targets int, end time.Time, procs []*subject) error {
	q := fmt.Sprintf(`count(timestamp(farm_scrapes_total{%s=%q}) >= %.3f)`, RunLabel, label, float64(end.UnixMilli())/1e3)
	err := waitFor(ctx, drainTimeout, fmt.Sprintf("the window's samples of %s at the receiver", label), procs,
		func(ctx context.Context) (bool, error) {
			n, err := b.queryScalar(ctx, q, time.Now())
			return err == nil && int(n) >= targets, err
		})
	if err != nil {
		return err
	}
	return sleep(ctx, drainMargin)
}

// snapshot is what is read from the processes at the edges of the window.
type snapshot struct {
	at    time.Time
	cpu   time.Duration
	bytes float64
	hwm   float64
}

func readSnapshot(ctx context.Context, procs []*subject) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var errs []error
	for _, p := range procs {
		pid := p.Pid()
		c, err := ReadCPU(pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
		s.cpu += c.Total()
		m, err := ReadMemory(pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
		s.hwm += float64(m.HWM)
	}
	// The counters after /proc, so their reading's CPU is not in the window
	// at its start, and is at its end only as much as at its start.
	for _, p := range procs {
		v, err := p.bytesSent(ctx)
		if err != nil {
			errs = append(errs, err)
			s.bytes = math.NaN()
		}
		s.bytes += v
	}
	return s, errors.Join(errs...)
}

// sideCPU is the CPU time used by what serves a run rather than by the
// run: this process, which is the farm (and the benchmark's own few
// requests), and the receiver.
type sideCPU struct {
	farm, receiver time.Duration
}

func (b *Bench) readSideCPU() (sideCPU, error) {
	var s sideCPU
	c, err := ReadCPU(os.Getpid())
	if err != nil {
		return s, fmt.Errorf("farm (this process): %w", err)
	}
	s.farm = c.Total()
	if pid := b.rcv.Pid(); pid > 0 {
		c, err := ReadCPU(pid)
		if err != nil {
			return s, fmt.Errorf("receiver: %w", err)
		}
		s.receiver = c.Total()
	}
	return s, nil
}

// rssSampler reads the summed resident memory of procs every rssEvery
// until stopped.
type rssSampler struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
	samples  []float64
	anon     []float64 // RssAnon, read with samples
	err      error
}

func startRSS(procs []*subject) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.Pid()
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(rssEvery)
		defer tick.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-tick.C:
			}
			sum, anon := 0.0, 0.0
			for _, pid := range pids {
				m, err := ReadMemory(pid)
				if err != nil {
					s.err = err
					return
				}
				sum += float64(m.RSS)
				anon += float64(m.Anon)
			}
			s.samples = append(s.samples, sum)
			s.anon = append(s.anon, anon)
		}
	}()
	return s
}

// stop ends the sampling and returns the medians of RSS and of its
// anonymous part.
func (s *rssSampler) stop() (rss, anon float64, err error) {
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.done
	return Median(s.samples), Median(s.anon), s.err
}

// measure measures a run whose processes are started: it waits until
// every target's samples arrive, lets warmupIntervals pass, measures the
// window of cfg.Duration, waits until the window's samples have arrived and
// counts them.
func (b *Bench) measure(ctx context.Context, r *Result, procs []*subject) error {
	if err := b.waitDelivering(ctx, r.Label, r.Targets, procs); err != nil {
		return err
	}
	if err := sleep(ctx, warmupIntervals*r.Interval); err != nil {
		return err
	}
	start, err := readSnapshot(ctx, procs)
	if err != nil {
		return err
	}
	side0, err := b.readSideCPU()
	if err != nil {
		return err
	}
	rss := startRSS(procs)
	err = sleep(ctx, b.cfg.Duration)
	end, serr := readSnapshot(ctx, procs)
	side1, cerr := b.readSideCPU()
	serr = errors.Join(serr, cerr)
	med, anon, rerr := rss.stop()
	if err := errors.Join(err, serr, rerr); err != nil {
		return err
	}
	r.RSS, r.Anon = med, anon
	// The receiver counts whole milliseconds; so does the window.
	r.Window = time.Duration(end.at.UnixMilli()-start.at.UnixMilli()) * time.Millisecond
	r.CPU = end.cpu - start.cpu
	r.BytesSent = end.bytes - start.bytes
	r.HWM = end.hwm
	r.FarmCPU, r.ReceiverCPU = side1.farm-side0.farm, side1.receiver-side0.receiver
	if err := b.waitDrained(ctx, r.Label, r.Targets, end.at, procs); err != nil {
		return err
	}
	r.Samples, r.Series, err = b.countSamples(ctx, r.Label, start.at, end.at)
	return err
}

// countSamples counts the samples of a run at the receiver with timestamps
// in (start, end], and the series they belong to. It counts per metric
// name: count_over_time drops the name, which would make the series of two
// metrics of one target collide.
func (b *Bench) countSamples(ctx context.Context, label string, start, end time.Time) (samples, series float64, err error) {
	at := time.UnixMilli(end.UnixMilli())
	w := end.UnixMilli() - start.UnixMilli()
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	names, err := b.rcv.Query(qctx, fmt.Sprintf(`count by (__name__) ({%s=%q})`, RunLabel, label), at)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range names {
		sel := fmt.Sprintf(`{__name__=%q, %s=%q}[%dms]`, n.Labels["__name__"], RunLabel, label, w)
		s, err := b.queryScalar(ctx, "sum(count_over_time("+sel+"))", at)
		if err != nil {
			return 0, 0, err
		}
		c, err := b.queryScalar(ctx, "count(count_over_time("+sel+"))", at)
		if err != nil {
			return 0, 0, err
		}
		samples += s
		series += c
	}
	return samples, series, nil
}

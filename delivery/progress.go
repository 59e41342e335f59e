package delivery

import (
	"sync/atomic"
	"time"
)

// Progress is what an endpoint has delivered since it was opened (the
// agent started, or a reload configured it), for rates and lags: the
// status page samples it.
type Progress struct {
	Name string
	// SentSamples counts the samples the endpoint acknowledged; it starts
	// at 0 with the endpoint.
	SentSamples uint64
	// NewestSent is the newest sample timestamp of an acknowledged request,
	// zero before the first. A record is one scrape commit and carries its
	// oldest timestamp; a scrape stamps its samples with one time, so this
	// is the newest scrape delivered.
	NewestSent time.Time
	// LastError is the error of the last failed send and LastErrorTime
	// when it happened; unlike EndpointStatus.LastError it stays after the
	// sends succeed again. Empty and zero if no send failed.
	LastError     string
	LastErrorTime time.Time
	// DroppedSamples counts unsent samples deleted to respect the size
	// limit.
	DroppedSamples uint64
}

// progress is an endpoint's side of Progress, written by its sender.
type progress struct {
	sent   atomic.Uint64
	newest atomic.Int64 // unix ms; 0: nothing acknowledged yet
	fail   atomic.Pointer[failure]
}

type failure struct {
	msg string
	at  time.Time
}

// acknowledged notes a request of samples with records' timestamps up to
// maxt (unix ms) acknowledged.
func (p *progress) acknowledged(samples int, maxt int64) {
	p.sent.Add(uint64(samples))
	if maxt > p.newest.Load() {
		p.newest.Store(maxt) // only the endpoint's sender writes it
	}
}

func (p *progress) failed(msg string, at time.Time) { p.fail.Store(&failure{msg: msg, at: at}) }

// Progress reports every endpoint's progress. It only reads: safe to call
// concurrently with appends and sends.
func (s *Storage) Progress() []Progress {
	s.mu.RLock()
	eps := s.endpoints
	s.mu.RUnlock()
	out := make([]Progress, 0, len(eps))
	for _, e := range eps {
		p := Progress{Name: e.name, SentSamples: e.progress.sent.Load()}
		if ms := e.progress.newest.Load(); ms > 0 {
			p.NewestSent = time.UnixMilli(ms)
		}
		if f := e.progress.fail.Load(); f != nil {
			p.LastError, p.LastErrorTime = f.msg, f.at
		}
		e.q.mu.Lock()
		p.DroppedSamples = e.q.dropped
		e.q.mu.Unlock()
		out = append(out, p)
	}
	return out
}

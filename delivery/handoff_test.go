package delivery

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// peers answers DeliveredThrough from Storages in this process, as the
// agent answers it from a peer's API; a peer not running is an error.
type peers struct {
	mu sync.Mutex
	s  map[string]*Storage
}

func (p *peers) set(name string, s *Storage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s == nil {
		p.s = map[string]*Storage{}
	}
	p.s[name] = s
}

func (p *peers) DeliveredThrough(_ context.Context, peer, endpoint string) (PeerDelivery, error) {
	p.mu.Lock()
	s := p.s[peer]
	p.mu.Unlock()
	if s == nil {
		return PeerDelivery{}, errors.New("not running")
	}
	t, found := s.DeliveredThrough(endpoint)
	failing, acked := false, uint64(0)
	for _, st := range s.Status() {
		if st.Name == endpoint {
			failing, acked = st.LastError != "", st.Acknowledged
		}
	}
	return PeerDelivery{Found: found, Through: t, Blocked: failing, Acked: acked}, nil
}

// scrapeFrom is scrape for the first scrape of a target taken over from
// another agent (what the fence tells the appender).
func scrapeFrom(t *testing.T, s *Storage, from string, n int, ts int64) {
	t.Helper()
	app := s.AppenderV2(context.Background())
	if from != "" {
		app.(interface{ HandedOver(string, time.Time) }).HandedOver(from, time.UnixMilli(ts))
	}
	for i := range n {
		_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), 0, ts, float64(ts), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// TestHandoffWaitsForThePreviousOwner hands a target from agent a to agent b
// while the receiver is down, then restarts a: when the receiver returns, b
// is ready to send its newer samples first. Without the hold a strict
// receiver then refuses a's older ones: lost. With it, b waits until a has
// delivered them and nothing is refused.
func TestHandoffWaitsForThePreviousOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"held", 30 * time.Second}, {"without holds", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newStrictReceiver()
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			cfg := testConfig(t, srv.URL)
			var ps peers
			o := Options{Predecessors: &ps, HandoffWait: tc.wait}
			dirA := t.TempDir()
			a, _ := open(t, dirA, cfg, o)
			b, regB := open(t, t.TempDir(), cfg, o)
			defer func() { require.NoError(t, b.Close(time.Second)) }()
			ps.set("a", a)
			ps.set("b", b)

			rcv.setDown(true)
			const series = 10
			// Scrape timestamps are when the commit opens (20 ms apart
			// here), as in a scrape loop.
			base := time.Now().UnixMilli()
			for i := range 20 {
				scrapeFrom(t, a, "", series, base+int64(i)*20)
			}
			scrapeFrom(t, b, "a", series, base+20*20)
			for i := 21; i < 40; i++ {
				scrapeFrom(t, b, "", series, base+int64(i)*20)
			}
			// a stops with its backlog on disk (a restart), after b has
			// heard from it that it cannot send (it left in an outage).
			time.Sleep(3 * holdPoll)
			require.NoError(t, a.Close(50*time.Millisecond))
			ps.set("a", nil)
			rcv.setDown(false)

			if tc.wait == 0 {
				require.Eventually(t, func() bool { return rcv.count() == 20*series }, 10*time.Second, 5*time.Millisecond, "b sends at once")
			} else {
				time.Sleep(time.Second)
				require.Zero(t, rcv.count(), "b holds its samples while a is away")
				require.Equal(t, "a", b.Status()[0].WaitingFor)
			}
			a, _ = open(t, dirA, cfg, o)
			defer func() { require.NoError(t, a.Close(time.Second)) }()
			ps.set("a", a)
			requireQueuesDone(t, 20*time.Second, a, b)

			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if tc.wait == 0 {
				require.Positive(t, rcv.rejected, "without the hold a's older samples are refused: the loss the hold prevents")
				require.Equal(t, 20*series, rcv.countLocked())
				return
			}
			require.Zero(t, rcv.rejected)
			require.Equal(t, 40*series, rcv.countLocked(), "every sample of both agents arrives")
			require.Equal(t, 1.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdDelivered))))
			require.NotNil(t, regB)
		})
	}
}

// A previous owner that cannot be asked and was not failing to send when
// last heard of (here: never heard of: a crash, or the other side of a
// partition) is not waited for: once for all the takeover's targets.
func TestHandoffDoesNotWaitForAGoneOwner(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var ps peers
	b, _ := open(t, t.TempDir(), testConfig(t, srv.URL), Options{Predecessors: &ps, HandoffWait: 30 * time.Second})
	defer func() { require.NoError(t, b.Close(time.Second)) }()
	now := time.Now().UnixMilli()
	for i := range 4 {
		scrapeFrom(t, b, "gone", 5, now+int64(i))
	}
	start := time.Now()
	require.Eventually(t, func() bool { return rcv.count() == 20 }, 10*time.Second, 5*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second, "not the 30 s wait")
	require.Equal(t, 4.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdGone))))
	require.Empty(t, b.Status()[0].WaitingFor)
}

// DeliveredThrough never claims a sample is delivered before it is: not
// while it is queued, not while its commit is still open, not after a
// restart until the backlog from before it is delivered.
func TestDeliveredThrough(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	dir := t.TempDir()
	s, _ := open(t, dir, cfg, Options{})
	_, found := s.DeliveredThrough("other")
	require.False(t, found)

	rcv.setDown(true)
	ts := time.Now().UnixMilli()
	require.NoError(t, scrape(t, s, 3, ts))
	time.Sleep(2 * markInterval)
	through, found := s.DeliveredThrough("rcv")
	require.True(t, found)
	require.LessOrEqual(t, through.UnixMilli(), ts, "a queued sample is not delivered")
	// A commit of older samples (end-of-run staleness markers) lowers the
	// marks taken before it.
	old := ts - 5000
	require.NoError(t, scrape(t, s, 3, old))
	through, _ = s.DeliveredThrough("rcv")
	require.LessOrEqual(t, through.UnixMilli(), old, "an older queued sample is not delivered")
	time.Sleep(2 * markInterval)
	through, _ = s.DeliveredThrough("rcv")
	require.LessOrEqual(t, through.UnixMilli(), old, "nor after more marks")

	// A restart during the outage: nothing is known until the backlog is out.
	require.NoError(t, s.Close(50*time.Millisecond))
	s, _ = open(t, dir, cfg, Options{})
	defer func() { require.NoError(t, s.Close(time.Second)) }()
	through, _ = s.DeliveredThrough("rcv")
	require.True(t, through.IsZero(), "after a restart with a backlog: %s", through)

	// An open commit holds the answer back to when it was opened.
	open := s.AppenderV2(context.Background())
	opened := time.Now()
	rcv.setDown(false)
	require.Eventually(t, func() bool {
		through, _ = s.DeliveredThrough("rcv")
		return !through.IsZero()
	}, 10*time.Second, 5*time.Millisecond, "the backlog goes out")
	require.Greater(t, through.UnixMilli(), ts, "the backlog is delivered")
	time.Sleep(2 * markInterval)
	through, _ = s.DeliveredThrough("rcv")
	require.Less(t, through, opened, "not past an open commit")
	require.NoError(t, open.Rollback())
	through, _ = s.DeliveredThrough("rcv")
	require.Greater(t, through, opened.Add(-markSlack), "past it once it is closed")
}

func TestMarksThinOut(t *testing.T) {
	var m marks
	for i := range 5000 {
		m.addEnd(uint64(i+1)*10, int64(i))
	}
	require.LessOrEqual(t, len(m.list), maxMarks)
	require.Equal(t, uint64(50000), m.list[len(m.list)-1].end, "the newest mark is kept")
	prev := mark{}
	for _, x := range m.list {
		require.Greater(t, x.end, prev.end)
		require.Greater(t, x.through, prev.through-1)
		prev = x
	}
	require.Zero(t, m.through(5), "before every mark nothing is known")
	got := m.through(25_000)
	require.LessOrEqual(t, got, int64(2499), "never more than the exact answer")
	require.Greater(t, got, int64(2499-20), "and close to it")
}

// scripted answers DeliveredThrough from a settable answer.
type scripted struct {
	mu  sync.Mutex
	ans PeerDelivery
}

func (s *scripted) set(a PeerDelivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ans = a
}

func (s *scripted) DeliveredThrough(context.Context, string, string) (PeerDelivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ans, nil
}

// A previous owner that cannot reach the receiver either (an outage) is
// waited for past HandoffWait: its lack of progress is nobody's fault.
func TestHandoffHoldWaitsOutAnOutage(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	pred := &scripted{}
	pred.set(PeerDelivery{Found: true, Blocked: true})
	b, _ := open(t, t.TempDir(), testConfig(t, srv.URL), Options{Predecessors: pred, HandoffWait: 200 * time.Millisecond})
	defer func() { require.NoError(t, b.Close(time.Second)) }()
	now := time.Now().UnixMilli()
	scrapeFrom(t, b, "p", 5, now)
	time.Sleep(time.Second)
	require.Zero(t, rcv.count(), "still holding after 5x the wait: the peer is failing, not stuck")
	pred.set(PeerDelivery{Found: true, Through: time.Now()})
	require.Eventually(t, func() bool { return rcv.count() == 5 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdDelivered))))

	// Not failing and not advancing: given up after the wait.
	pred.set(PeerDelivery{Found: true})
	scrapeFrom(t, b, "p", 5, time.Now().UnixMilli())
	require.Eventually(t, func() bool { return rcv.count() == 10 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdAbandoned))))
}

// A previous owner that delivers and exits before the sender reaches the
// handoff record (a scale-in: the new owner's batch goes out later) is
// known to be done from what it said while it was up.
func TestHandoffRemembersAnOwnerThatExited(t *testing.T) {
	rcvA, rcvB := newStrictReceiver(), newStrictReceiver()
	srvA, srvB := httptest.NewServer(rcvA), httptest.NewServer(rcvB)
	defer srvA.Close()
	defer srvB.Close()
	var ps peers
	o := Options{Predecessors: &ps, HandoffWait: 30 * time.Second}
	a, _ := open(t, t.TempDir(), testConfig(t, srvA.URL), o)
	b, _ := open(t, t.TempDir(), testConfig(t, srvB.URL), o)
	defer func() { require.NoError(t, b.Close(time.Second)) }()
	ps.set("a", a)

	rcvB.setDown(true)
	now := time.Now()
	scrapeFrom(t, a, "", 5, now.UnixMilli())
	// b's own samples first: its sender is stuck sending them, and reaches
	// the handoff record only once a is gone.
	require.NoError(t, scrape(t, b, 3, now.Add(-time.Millisecond).UnixMilli()))
	scrapeFrom(t, b, "a", 5, now.Add(time.Millisecond).UnixMilli())
	require.Eventually(t, func() bool { return rcvA.count() == 5 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, a.Close(time.Second))
	through, _ := a.DeliveredThrough("rcv")
	require.Equal(t, forever, through, "closed with everything delivered: it writes nothing more")
	time.Sleep(3 * holdPoll) // the watcher hears it
	ps.set("a", nil)         // and it is gone

	rcvB.setDown(false)
	start := time.Now()
	require.Eventually(t, func() bool { return rcvB.count() == 3+5 }, 10*time.Second, 5*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second, "not the 30 s wait for an owner that cannot be asked")
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdDelivered))))
}

// Both agents restart inside the outage, the new owner first: its new
// watcher never heard of the previous owner, which is still starting when
// the receiver returns. The hold waits for it instead of taking it for
// gone: a's older samples arrive, none is refused.
func TestHandoffWaitsForAPreviousOwnerStillStarting(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	var ps peers
	o := Options{Predecessors: &ps, HandoffWait: 10 * time.Second}
	dirA, dirB := t.TempDir(), t.TempDir()
	a, _ := open(t, dirA, cfg, o)
	b, _ := open(t, dirB, cfg, o)
	rcv.setDown(true)
	const series = 10
	base := time.Now().UnixMilli()
	for i := range 20 {
		scrapeFrom(t, a, "", series, base+int64(i)*20)
	}
	scrapeFrom(t, b, "a", series, base+20*20)
	for i := 21; i < 40; i++ {
		scrapeFrom(t, b, "", series, base+int64(i)*20)
	}
	require.NoError(t, a.Close(100*time.Millisecond))
	require.NoError(t, b.Close(100*time.Millisecond))

	b, _ = open(t, dirB, cfg, o)
	defer func() { require.NoError(t, b.Close(time.Second)) }()
	rcv.setDown(false)
	// a answers nothing for longer than goneAfter: it is still starting.
	time.Sleep(goneAfter + time.Second)
	require.Zero(t, rcv.count(), "b holds its samples while a starts")
	require.Equal(t, "a", b.Status()[0].WaitingFor)
	a, _ = open(t, dirA, cfg, o)
	defer func() { require.NoError(t, a.Close(time.Second)) }()
	ps.set("a", a)
	requireQueuesDone(t, 20*time.Second, a, b)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Zero(t, rcv.rejected)
	require.Equal(t, 40*series, rcv.countLocked(), "every sample of both agents arrives")
}

// A previous owner that restarted inside a long outage delivers its
// backlog for longer than the hold timeout, and until it is through, its
// delivered-through time is unknown. Its acknowledged position grows:
// that is progress, and the new owner keeps waiting.
func TestHandoffWaitsForAPreviousOwnerReplayingABacklog(t *testing.T) {
	rcv := newStrictReceiver()
	rcv.delay = 100 * time.Millisecond
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	var ps peers
	o := Options{Predecessors: &ps, HandoffWait: time.Second}
	dirA, dirB := t.TempDir(), t.TempDir()
	a, _ := open(t, dirA, cfg, o)
	b, _ := open(t, dirB, cfg, o)
	rcv.setDown(true)
	const series, commits = 10, 150 // 30 requests of 50 samples: 3 s at the receiver
	base := time.Now().UnixMilli()
	for i := range commits {
		scrapeFrom(t, a, "", series, base+int64(i))
	}
	scrapeFrom(t, b, "a", series, base+commits)
	for i := 1; i < 10; i++ {
		scrapeFrom(t, b, "", series, base+commits+int64(i))
	}
	require.NoError(t, a.Close(100*time.Millisecond))
	require.NoError(t, b.Close(100*time.Millisecond))

	a, _ = open(t, dirA, cfg, o)
	defer func() { require.NoError(t, a.Close(time.Second)) }()
	b, regB := open(t, dirB, cfg, o)
	defer func() { require.NoError(t, b.Close(time.Second)) }()
	ps.set("a", a)
	ps.set("b", b)
	start := time.Now()
	rcv.setDown(false)
	requireQueuesDone(t, 30*time.Second, a, b)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Greater(t, time.Since(start), 2*o.HandoffWait, "a's replay outlasts the hold timeout")
	require.Zero(t, rcv.rejected)
	require.Equal(t, (commits+10)*series, rcv.countLocked(), "every sample of both agents arrives")
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.holds.WithLabelValues("rcv", string(holdDelivered))))
	require.NotNil(t, regB)
}

// requireQueuesDone waits up to d until every endpoint queue of ss is
// acknowledged to its end: delivered or refused.
func requireQueuesDone(t *testing.T, d time.Duration, ss ...*Storage) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, s := range ss {
			for _, e := range s.endpoints {
				if e.acked.Load() != e.q.end() {
					return false
				}
			}
		}
		return true
	}, d, 10*time.Millisecond, "every queue is delivered or refused")
}

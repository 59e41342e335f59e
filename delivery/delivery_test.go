package delivery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"
)

// strictReceiver accepts remote-write 1.0 like a Prometheus receiver
// without an out-of-order window: a request with a sample older than its
// series' latest is refused whole (400), an identical latest sample is
// accepted. While down it answers 503.
type strictReceiver struct {
	mu       sync.Mutex
	down     bool
	latest   map[string]int64
	samples  map[string][]int64
	rejected int
	requests int
	// delay is how long each request takes; set before the first one.
	delay time.Duration
}

func newStrictReceiver() *strictReceiver {
	return &strictReceiver{latest: map[string]int64{}, samples: map[string][]int64{}}
}

func (r *strictReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	wr, err := remote.DecodeWriteRequest(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	time.Sleep(r.delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	r.requests++
	latest := map[string]int64{}
	for _, ts := range wr.Timeseries {
		key := fmt.Sprint(ts.Labels)
		for _, s := range ts.Samples {
			last, ok := latest[key]
			if !ok {
				last, ok = r.latest[key]
			}
			if ok && s.Timestamp < last {
				r.rejected++
				http.Error(w, "out of order sample", http.StatusBadRequest)
				return
			}
			latest[key] = s.Timestamp
		}
	}
	for _, ts := range wr.Timeseries {
		key := fmt.Sprint(ts.Labels)
		for _, s := range ts.Samples {
			if n := len(r.samples[key]); n > 0 && r.samples[key][n-1] == s.Timestamp {
				continue // the identical latest sample, resent
			}
			r.samples[key] = append(r.samples[key], s.Timestamp)
		}
		r.latest[key] = latest[key]
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *strictReceiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *strictReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked()
}

func (r *strictReceiver) countLocked() int {
	n := 0
	for _, s := range r.samples {
		n += len(s)
	}
	return n
}

func testConfig(t *testing.T, u string) *config.Config {
	t.Helper()
	cfg, err := config.Load(fmt.Sprintf(`
global:
  external_labels: {cluster: eu1}
remote_write:
  - url: %s/api/v1/write
    name: rcv
    queue_config: {batch_send_deadline: 20ms, min_backoff: 5ms, max_backoff: 20ms, max_samples_per_send: 50}
    write_relabel_configs:
      - {source_labels: [__name__], regex: dropped, action: drop}
`, u), nil)
	require.NoError(t, err)
	return cfg
}

func open(t *testing.T, dir string, cfg *config.Config, o Options) (*Storage, *prometheus.Registry) {
	t.Helper()
	o.Dir = dir
	reg := prometheus.NewRegistry()
	s, err := Open(nil, reg, o)
	require.NoError(t, err)
	require.NoError(t, s.ApplyConfig(cfg))
	return s, reg
}

// scrape appends one commit of n series at t, like a scrape loop.
func scrape(t *testing.T, s storage.AppendableV2, n int, ts int64) error {
	t.Helper()
	app := s.AppenderV2(context.Background())
	for i := range n {
		_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), 0, ts, float64(ts), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	_, err := app.Append(0, labels.FromStrings("__name__", "dropped"), 0, ts, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	return app.Commit()
}

func TestDeliversEverythingAcrossRestartsDuringAnOutage(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	dir := t.TempDir()

	rcv.setDown(true)
	const series, rounds = 10, 5
	ts := int64(1000)
	for range rounds {
		s, _ := open(t, dir, cfg, Options{})
		for range 20 {
			require.NoError(t, scrape(t, s, series, ts))
			ts += 1000
		}
		require.NoError(t, s.Close(50*time.Millisecond))
	}
	require.Zero(t, rcv.count(), "nothing is sent while the receiver is down")

	rcv.setDown(false)
	s, reg := open(t, dir, cfg, Options{})
	defer func() { require.NoError(t, s.Close(time.Second)) }()
	require.NoError(t, scrape(t, s, series, ts))
	want := series * (rounds*20 + 1)
	require.Eventually(t, func() bool { return rcv.count() == want }, 20*time.Second, 10*time.Millisecond, "all %d samples arrive", want)
	rcv.mu.Lock()
	require.Zero(t, rcv.rejected, "nothing refused as out of order")
	rcv.mu.Unlock()
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s.m.sent.WithLabelValues("rcv", srv.URL+"/api/v1/write")) == float64(want)
	}, 5*time.Second, 5*time.Millisecond, "the acknowledged samples are counted once the answer is in")
	rcv.mu.Lock()
	for key, got := range rcv.samples {
		require.Contains(t, key, "cluster", "external labels are added")
		require.Len(t, got, rounds*20+1, key)
	}
	rcv.mu.Unlock()
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(gauge(t, reg, "shoal_delivery_backlog_bytes")) == 0
	}, 5*time.Second, 10*time.Millisecond)
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// A crash without Close: the records are in the page cache; the savepoint
// says what was acknowledged. Nothing is lost or refused on restart.
func TestResumesAfterACrash(t *testing.T) {
	rcv := newStrictReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	dir := t.TempDir()

	s, _ := open(t, dir, cfg, Options{})
	ts := int64(1000)
	for range 30 {
		require.NoError(t, scrape(t, s, 10, ts))
		ts += 1000
	}
	require.Eventually(t, func() bool { return rcv.count() == 300 }, 10*time.Second, 5*time.Millisecond)
	rcv.setDown(true)
	for range 30 {
		require.NoError(t, scrape(t, s, 10, ts))
		ts += 1000
	}
	crash(s)

	rcv.setDown(false)
	s, _ = open(t, dir, cfg, Options{})
	defer func() { require.NoError(t, s.Close(time.Second)) }()
	require.Eventually(t, func() bool { return rcv.count() == 600 }, 10*time.Second, 5*time.Millisecond)
	// A request the receiver wrote but whose answer the crash cut off is
	// resent first and refused as out of order: counted, nothing lost.
	rcv.mu.Lock()
	rejected := rcv.rejected
	rcv.mu.Unlock()
	require.LessOrEqual(t, rejected, 1)
	if rejected == 1 {
		require.Positive(t, s.endpoints[0].resendOK.Load(), "the refused resend is counted")
	}
}

// crash abandons s as kill -9 would: no flush, no final savepoint, files
// left as they are; only the lock is released (the process is gone).
func crash(s *Storage) {
	s.mu.Lock()
	s.closed = true
	eps := s.endpoints
	s.mu.Unlock()
	for _, e := range eps {
		e.cancel()
		<-e.done
		e.q.mu.Lock()
		_ = e.q.file.Close()
		e.q.file = nil
		e.q.mu.Unlock()
		_ = e.sp.f.Close()
	}
	s.cancel()
	s.wg.Wait()
	_ = s.lock.Close()
}

func TestTornRecordIsCutOnOpen(t *testing.T) {
	dir := t.TempDir()
	q, err := openQueue(dir, 1<<20, 0)
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, q.appendPayload([]byte{byte(i), 1, 2, 3}, 1, int64(i)))
	}
	require.NoError(t, q.close())
	seg := filepath.Join(dir, segmentName(0))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5}) // half a header
	require.NoError(t, err)
	require.NoError(t, f.Close())

	q, err = openQueue(dir, 1<<20, 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.close()) }()
	r := &reader{q: q}
	defer r.close()
	for i := range 5 {
		p, n, mint, next, wait, err := r.next()
		require.NoError(t, err)
		require.Nil(t, wait)
		require.Equal(t, byte(i), p[0])
		require.Equal(t, uint32(1), n)
		require.Equal(t, int64(i), mint)
		r.off = next
	}
	_, _, _, _, wait, err := r.next()
	require.NoError(t, err)
	require.NotNil(t, wait, "the torn record is gone")
	require.NoError(t, q.appendPayload([]byte{9}, 1, 9), "appends continue after the cut")
}

// Positions are written at once and fdatasynced once per sync tick, not per
// request; what was written is read back without a sync (a crash of the
// process keeps the page cache) and close syncs what is left.
func TestSavepointSyncsOncePerTick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "savepoint")
	sp, _, err := openSavepoint(path)
	require.NoError(t, err)
	syncs := 0
	sp.fsync = func(f *os.File) error { syncs++; return fdatasync(f) }
	for i := range uint64(3) {
		require.NoError(t, sp.save(position{acked: 10 * i, inflight: 10*i + 5}))
	}
	require.Zero(t, syncs, "save does not sync")
	_, pos, err := openSavepoint(path)
	require.NoError(t, err)
	require.Equal(t, position{acked: 20, inflight: 25}, pos, "written before any sync")
	require.NoError(t, sp.sync())
	require.NoError(t, sp.sync())
	require.Equal(t, 1, syncs, "one sync for three saves, none when nothing changed")
	require.NoError(t, sp.save(position{acked: 30, inflight: 30}))
	require.NoError(t, sp.close())
	require.Equal(t, 2, syncs, "close syncs the last save")
	sp.fsync = func(*os.File) error { return errors.New("disk gone") }
	sp.dirty = true
	require.ErrorContains(t, sp.sync(), "sync savepoint "+path+": disk gone")
}

func TestSavepointSurvivesATornSlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "savepoint")
	sp, pos, err := openSavepoint(path)
	require.NoError(t, err)
	require.Equal(t, position{}, pos)
	require.NoError(t, sp.save(position{acked: 10, inflight: 20}))
	require.NoError(t, sp.save(position{acked: 20, inflight: 30}))
	require.NoError(t, sp.close())

	// Tear the newer slot (seq 2, slot 0).
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff, 0xff}, 10)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	sp, pos, err = openSavepoint(path)
	require.NoError(t, err)
	require.Equal(t, position{acked: 10, inflight: 20}, pos, "the older slot is used")
	require.NoError(t, sp.save(position{acked: 40, inflight: 40}))
	require.NoError(t, sp.close())
	_, pos, err = openSavepoint(path)
	require.NoError(t, err)
	require.Equal(t, position{acked: 40, inflight: 40}, pos)
}

func TestMaxSizeDropsTheOldestCounted(t *testing.T) {
	rcv := newStrictReceiver()
	rcv.setDown(true)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s, _ := open(t, t.TempDir(), testConfig(t, srv.URL), Options{SegmentBytes: 4 << 10, MaxBytes: 16 << 10})
	ts := int64(1000)
	for range 400 {
		require.NoError(t, scrape(t, s, 10, ts))
		ts += 1000
	}
	st := s.Status()
	require.Len(t, st, 1)
	require.LessOrEqual(t, st[0].BacklogBytes, uint64(16<<10)+4<<10)
	e := s.endpoints[0]
	e.q.mu.Lock()
	dropped := e.q.dropped
	e.q.mu.Unlock()
	require.Positive(t, dropped, "samples deleted by the limit are counted")

	rcv.setDown(false)
	require.Eventually(t, func() bool { return rcv.count() == 4000-int(dropped) }, 10*time.Second, 5*time.Millisecond, "what was kept is sent")
	require.NoError(t, s.Close(5*time.Second))
	require.Equal(t, 4000-int(dropped), rcv.count(), "and nothing more")
}

// The queue on a 256 KiB tmpfs fills up: commits fail and say so, Health
// reports it; when space returns, writes and sends resume without a
// restart and nothing written after the recovery is lost.
func TestDiskFullIsAStateNotAFailure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	defer func() { _ = exec.Command("umount", dir).Run() }()
	rcv := newStrictReceiver()
	rcv.setDown(true)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s, reg := open(t, dir, testConfig(t, srv.URL), Options{SegmentBytes: 64 << 10})
	ts := int64(1000)
	var failed atomic.Int64
	written := 0
	for range 4000 {
		if err := scrape(t, s, 50, ts); err != nil {
			failed.Add(1)
		} else {
			written += 50
		}
		ts += 1000
		if failed.Load() == 10 {
			break
		}
	}
	require.Positive(t, failed.Load(), "the disk filled up")
	require.ErrorContains(t, s.Health(), "cannot write")
	require.Equal(t, 1.0, testutil.ToFloat64(gauge(t, reg, "shoal_storage_unwritable")))

	// Space returns (the tmpfs grows), the receiver too.
	out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	rcv.setDown(false)
	for range 10 {
		require.NoError(t, scrape(t, s, 50, ts))
		written += 50
		ts += 1000
	}
	require.NoError(t, s.Health())
	require.Eventually(t, func() bool { return rcv.count() == written }, 20*time.Second, 10*time.Millisecond, "everything written arrives")
	rcv.mu.Lock()
	require.Zero(t, rcv.rejected)
	rcv.mu.Unlock()
	require.NoError(t, s.Close(time.Second))
}

func TestRemoteWrite2Conversion(t *testing.T) {
	ls := labels.FromStrings("__name__", "m", "a", "b")
	var b []byte
	b = appendSeries(b, encodeLabels(nil, ls), 1000, 1.5, nil, nil, nil)
	b = appendSeries(b, encodeLabels(nil, labels.FromStrings("__name__", "m", "a", "c")), 2000, 2.5, nil, nil, nil)
	out, err := toV2(b)
	require.NoError(t, err)
	var req writev2.Request
	require.NoError(t, req.Unmarshal(out))
	require.Len(t, req.Timeseries, 2)
	var sb labels.ScratchBuilder
	got, err := req.Timeseries[1].ToLabels(&sb, req.Symbols)
	require.NoError(t, err)
	require.Equal(t, `{__name__="m", a="c"}`, got.String())
	require.Equal(t, int64(2000), req.Timeseries[1].Samples[0].Timestamp)
	require.Equal(t, 2.5, req.Timeseries[1].Samples[0].Value)
}

func TestEncodingMatchesPrompb(t *testing.T) {
	ls := labels.FromStrings("__name__", "m", "a", "b")
	var b []byte
	b = appendSeries(b, encodeLabels(nil, ls), 123456, math.Pi, nil, nil, nil)
	b = appendSeries(b, encodeLabels(nil, ls), -5, math.NaN(), nil, nil, nil)
	req, err := remote.DecodeWriteRequest(bytesReader(snappyEncode(b)))
	require.NoError(t, err)
	require.Len(t, req.Timeseries, 2)
	require.Equal(t, "a", req.Timeseries[0].Labels[1].Name)
	require.Equal(t, math.Pi, req.Timeseries[0].Samples[0].Value)
	require.Equal(t, int64(123456), req.Timeseries[0].Samples[0].Timestamp)
	require.Equal(t, int64(-5), req.Timeseries[1].Samples[0].Timestamp)
	require.True(t, math.IsNaN(req.Timeseries[1].Samples[0].Value))
}

// Records' snappy blocks joined behind one length are the snappy block of
// the joined records, whatever their sizes (snappy.Encode cuts its input
// into 64 KiB fragments, so a big record is itself several streams).
func TestBatchJoinsSnappyBlocks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		var b batch
		b.blocks = make([]byte, reqHeadroom)
		var want []byte
		for range 1 + rnd.IntN(6) {
			rec := make([]byte, rnd.IntN(200<<10))
			for i := range rec {
				rec[i] = byte(rnd.IntN(4)) // compressible, with copies
			}
			if rnd.IntN(3) == 0 {
				rec = benchText(rnd.IntN(3000)) // remote-write-like text
			}
			ok, full := b.addRecord(snappy.Encode(nil, rec))
			require.True(t, ok)
			require.False(t, full)
			want = append(want, rec...)
		}
		got, err := snappy.Decode(nil, b.request())
		require.NoError(t, err, "trial %d", trial)
		require.Equal(t, want, got, "trial %d", trial)
	}
	var b batch
	b.blocks = make([]byte, reqHeadroom)
	ok, _ := b.addRecord([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	require.False(t, ok, "a header that is no snappy length")
	b.rawLen = math.MaxUint32 - 1
	ok, full := b.addRecord(snappy.Encode(nil, []byte("ab")))
	require.False(t, ok)
	require.True(t, full, "a request holds at most 2^32-1 decoded bytes")
}

func benchText(n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "farm_series{series=\"%d\"} %d\n", i, i)
	}
	return b
}

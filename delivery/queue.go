// Package delivery is shoal's durable remote-write path: every commit of a
// scrape becomes one record in an on-disk queue per remote_write endpoint,
// and one sender per endpoint ships the records in order, remembering on
// disk (crash-safe) how far the endpoint has acknowledged them. A restart
// resumes from there, so nothing scraped during a receiver outage is lost
// to a restart, and a strict receiver sees every series in order.
package delivery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
)

// A record is a 24-byte header and a snappy-compressed payload: a fragment
// of a remote-write 1.0 WriteRequest (repeated timeseries), so records
// concatenate into a request without decoding.
//
//	len u32 | crc32c u32 (of the rest of the header and the payload) |
//	samples u32 | flags u32 | min timestamp i64
//
// A record with flagHandoff carries no samples: its payload is the name of
// the agent that owned a target before this one, and its timestamp the
// first sample this agent scraped of it (see handoff.go).
const headerSize = 24

const flagHandoff = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a record that fails its checksum or length: a torn write.
var errCorrupt = errors.New("corrupt record")

type segment struct {
	start   uint64 // logical offset of its first byte
	size    uint64
	samples uint64
}

func (s *segment) end() uint64 { return s.start + s.size }

func segmentName(start uint64) string { return fmt.Sprintf("%020d", start) }

// queue is an append-only log of records over segment files named by their
// starting logical offset. One writer (serialised by mu) and one reader.
type queue struct {
	dir          string
	segmentBytes uint64
	maxBytes     uint64 // 0: unlimited

	mu     sync.Mutex
	segs   []*segment // ordered; the last one is written
	file   *os.File   // the last segment, open for writing
	dirty  bool       // written since the last fsync
	broken bool       // the last write failed half way: roll before writing again
	notify chan struct{}
	// dropped counts samples in segments removed by the size limit before
	// they were sent; read by the metrics.
	dropped uint64
	// acked is where the reader's acknowledged data ends; segments before it
	// are deleted. inflight is where the request being sent ends: what is
	// before it is in the sender's memory.
	acked, inflight uint64
}

// samplesFrom counts the samples of the records of s from off on, reading
// their headers.
func (q *queue) samplesFrom(s *segment, off uint64) uint64 {
	if off <= s.start {
		return s.samples
	}
	f, err := os.Open(filepath.Join(q.dir, segmentName(s.start)))
	if err != nil {
		return s.samples
	}
	defer func() { _ = f.Close() }()
	var n uint64
	var hdr [headerSize]byte
	for pos := uint64(0); pos < s.size; {
		l, samples, err := readRecord(f, pos, s.size, hdr[:], nil, false)
		if err != nil {
			break
		}
		if s.start+pos >= off {
			n += uint64(samples)
		}
		pos += l
	}
	return n
}

// setInflight records where the request being sent ends.
func (q *queue) setInflight(off uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = off
}

// openQueue opens or creates the queue in dir, truncating a torn record at
// the end of the last segment (a crash during a write).
func openQueue(dir string, segmentBytes, maxBytes uint64) (*queue, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	q := &queue{dir: dir, segmentBytes: segmentBytes, maxBytes: maxBytes, notify: make(chan struct{})}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		start, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || len(e.Name()) != 20 || !e.Type().IsRegular() {
			continue
		}
		q.segs = append(q.segs, &segment{start: start})
	}
	sort.Slice(q.segs, func(i, j int) bool { return q.segs[i].start < q.segs[j].start })
	for i, s := range q.segs {
		last := i == len(q.segs)-1
		if err := q.scan(s, last); err != nil {
			return nil, err
		}
		if !last && s.end() != q.segs[i+1].start {
			// A segment whose tail was torn: the next one starts later. The
			// logical offsets in between hold nothing.
			s.size = q.segs[i+1].start - s.start
		}
	}
	if len(q.segs) == 0 {
		q.segs = []*segment{{start: 0}}
	}
	if err := q.openLast(); err != nil {
		return nil, err
	}
	return q, nil
}

// scan reads the headers of s to count its samples; in the last segment it
// checks every record and truncates the file at the first bad one.
func (q *queue) scan(s *segment, verify bool) error {
	f, err := os.Open(filepath.Join(q.dir, segmentName(s.start)))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var off uint64
	var hdr [headerSize]byte
	var buf []byte
	for {
		n, samples, err := readRecord(f, off, uint64(st.Size()), hdr[:], &buf, verify)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if !errors.Is(err, errCorrupt) {
				return err
			}
			if !verify {
				break
			}
			if err := os.Truncate(f.Name(), int64(off)); err != nil {
				return fmt.Errorf("truncate torn record in %s: %w", f.Name(), err)
			}
			break
		}
		off += n
		s.samples += uint64(samples)
	}
	s.size = off
	return nil
}

// readRecord reads the record at off of a file of the given size. With
// verify (or a non-nil *buf to fill) it reads and checks the payload.
func readRecord(f io.ReaderAt, off, size uint64, hdr []byte, buf *[]byte, verify bool) (n uint64, samples uint32, err error) {
	if off == size {
		return 0, 0, io.EOF
	}
	if size-off < headerSize {
		return 0, 0, errCorrupt
	}
	if _, err := f.ReadAt(hdr, int64(off)); err != nil {
		return 0, 0, err
	}
	l := uint64(binary.LittleEndian.Uint32(hdr[0:]))
	if l > size-off-headerSize {
		return 0, 0, errCorrupt
	}
	samples = binary.LittleEndian.Uint32(hdr[8:])
	if verify {
		if uint64(cap(*buf)) < l {
			*buf = make([]byte, l)
		}
		*buf = (*buf)[:l]
		if _, err := f.ReadAt(*buf, int64(off+headerSize)); err != nil {
			return 0, 0, err
		}
		crc := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, *buf)
		if crc != binary.LittleEndian.Uint32(hdr[4:]) {
			return 0, 0, errCorrupt
		}
	}
	return headerSize + l, samples, nil
}

func (q *queue) openLast() error {
	s := q.segs[len(q.segs)-1]
	f, err := os.OpenFile(filepath.Join(q.dir, segmentName(s.start)), os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	q.file = f
	q.broken = false
	return nil
}

// end is the logical offset after the last record.
func (q *queue) end() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.segs[len(q.segs)-1].end()
}

// append writes one record: rec is headerSize bytes of room for the header
// followed by the payload. A failed write (disk full) leaves the queue as
// it was: the record is not there, and the next append starts a new
// segment if the failed one could not be cut back.
func (q *queue) append(rec []byte, samples uint32, mint int64) error {
	return q.appendFlags(rec, samples, 0, mint)
}

func (q *queue) appendFlags(rec []byte, samples, flags uint32, mint int64) error {
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)-headerSize))
	binary.LittleEndian.PutUint32(rec[8:], samples)
	binary.LittleEndian.PutUint32(rec[12:], flags)
	binary.LittleEndian.PutUint64(rec[16:], uint64(mint))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], castagnoli))

	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.segs[len(q.segs)-1]
	if q.broken || (s.size > 0 && s.size+uint64(len(rec)) > q.segmentBytes) {
		if err := q.roll(); err != nil {
			return err
		}
		s = q.segs[len(q.segs)-1]
	}
	if _, err := q.file.WriteAt(rec, int64(s.size)); err != nil {
		if terr := q.file.Truncate(int64(s.size)); terr != nil {
			q.broken = true
		}
		return err
	}
	s.size += uint64(len(rec))
	s.samples += uint64(samples)
	q.dirty = true
	q.enforceLimit()
	close(q.notify)
	q.notify = make(chan struct{})
	return nil
}

// appendPayload copies payload behind a header and appends it (tests).
func (q *queue) appendPayload(payload []byte, samples uint32, mint int64) error {
	rec := make([]byte, headerSize+len(payload))
	copy(rec[headerSize:], payload)
	return q.append(rec, samples, mint)
}

// roll closes the written segment and starts the next one.
func (q *queue) roll() error {
	last := q.segs[len(q.segs)-1]
	if q.file != nil {
		_ = q.file.Sync()
		_ = q.file.Close()
		q.file = nil
	}
	next := &segment{start: last.end()}
	f, err := os.OpenFile(filepath.Join(q.dir, segmentName(next.start)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		// Keep writing the old one if it can be reopened.
		if oerr := q.openLast(); oerr != nil {
			q.broken = true
		}
		return err
	}
	q.segs = append(q.segs, next)
	q.file = f
	q.broken = false
	q.dirty = false
	return nil
}

// enforceLimit deletes the oldest segments while the queue holds more than
// maxBytes, counting the unsent samples in them.
func (q *queue) enforceLimit() {
	if q.maxBytes == 0 {
		return
	}
	for len(q.segs) > 1 && q.bytesLocked() > q.maxBytes {
		s := q.segs[0]
		if from := max(q.acked, q.inflight); s.end() > from {
			q.dropped += q.samplesFrom(s, from)
		}
		_ = os.Remove(filepath.Join(q.dir, segmentName(s.start)))
		q.segs = q.segs[1:]
	}
}

func (q *queue) bytesLocked() uint64 {
	return q.segs[len(q.segs)-1].end() - q.segs[0].start
}

// release marks everything before off acknowledged and deletes the segments
// wholly before it (not the one written).
func (q *queue) release(off uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if off > q.acked {
		q.acked = off
	}
	for len(q.segs) > 1 && q.segs[0].end() <= q.acked {
		_ = os.Remove(filepath.Join(q.dir, segmentName(q.segs[0].start)))
		q.segs = q.segs[1:]
	}
}

// sync fsyncs the written segment if it changed.
func (q *queue) sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.dirty || q.file == nil {
		return nil
	}
	q.dirty = false
	return q.file.Sync()
}

// stats are the queue's size and samples from off to the end.
func (q *queue) stats(off uint64) (bytes, samples uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	end := q.segs[len(q.segs)-1].end()
	off = max(off, q.segs[0].start)
	if off < end {
		bytes = end - off
	}
	for _, s := range q.segs {
		if s.end() > off {
			samples += s.samples // whole segments: an upper bound
		}
	}
	return bytes, samples
}

func (q *queue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.file == nil {
		return nil
	}
	err := q.file.Sync()
	if cerr := q.file.Close(); err == nil {
		err = cerr
	}
	q.file = nil
	return err
}

// reader reads records in order from a logical offset.
type reader struct {
	q     *queue
	off   uint64
	seg   *segment
	file  *os.File
	hdr   [headerSize]byte
	buf   []byte
	flags uint32 // of the record next returned last
}

// next returns the payload of the record at r.off and the offset after it,
// or ok=false when there is none yet (wait on the returned channel). A
// position inside deleted segments moves to the first one left.
func (r *reader) next() (payload []byte, samples uint32, mint int64, next uint64, wait <-chan struct{}, err error) {
	r.q.mu.Lock()
	segs := r.q.segs
	if r.off < segs[0].start {
		r.off = segs[0].start
	}
	var s *segment
	for _, c := range segs {
		if r.off >= c.start && r.off < c.end() {
			s = c
			break
		}
	}
	if s == nil {
		wait = r.q.notify
		r.q.mu.Unlock()
		return nil, 0, 0, r.off, wait, nil
	}
	size := s.size
	r.q.mu.Unlock()

	if r.seg != s {
		if r.file != nil {
			_ = r.file.Close()
			r.file = nil
		}
		f, err := os.Open(filepath.Join(r.q.dir, segmentName(s.start)))
		if err != nil {
			return nil, 0, 0, r.off, nil, err
		}
		r.file, r.seg = f, s
	}
	n, samples, err := readRecord(r.file, r.off-s.start, size, r.hdr[:], &r.buf, true)
	if err != nil {
		if errors.Is(err, errCorrupt) || errors.Is(err, io.EOF) {
			// Skip the rest of a damaged segment.
			r.off = s.end()
			return r.next()
		}
		return nil, 0, 0, r.off, nil, err
	}
	mint = int64(binary.LittleEndian.Uint64(r.hdr[16:]))
	r.flags = binary.LittleEndian.Uint32(r.hdr[12:])
	return r.buf, samples, mint, r.off + n, nil, nil
}

func (r *reader) close() {
	if r.file != nil {
		_ = r.file.Close()
		r.file = nil
	}
}

// lockDir takes an exclusive lock on dir/lock, so two agents never share a
// storage path.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("storage path %s is in use by another process (lock %s): %w", dir, f.Name(), err)
	}
	return f, nil
}

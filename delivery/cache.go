package delivery

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// seriesCache keeps what write relabeling made of each series, so that a
// series is relabeled once per config epoch, not per sample: it gives each
// series a reference the scrape cache hands back on the next scrape, so
// that a sample costs an index into a slice. Series unseen for two GC
// rounds (10-20 minutes) are forgotten.
//
// It is only used while some endpoint has write_relabel_configs: without
// relabeling a sample needs nothing but its labels, which are encoded for
// each sample (encode.go), and Append keeps nothing per series (see
// plainRef). When it is used it keeps little: the caller's labels (not a
// copy: the scrape cache holds the same ones, and Prometheus' head and
// agent DB retain them the same way), a slot, a map entry by hash and the
// relabeled encoding only where relabeling changed the labels.
type seriesCache struct {
	mu sync.RWMutex
	// slots holds the series by ref-1. A forgotten series' slot is reused,
	// so a ref names a series only if its labels match (get checks).
	slots  []*series
	free   []uint32           // empty slots
	byHash map[uint64]*series // chained through series.next on a collision
	gen    atomic.Uint32
	// hash is labels.Labels.Hash; tests replace it to force collisions.
	hash func(labels.Labels) uint64
}

type series struct {
	ref  uint64
	ls   labels.Labels // never modified
	next *series       // the next series with the same hash, rarely any; guarded by mu
	// rel is the write relabeling's outcome for the epoch it was computed
	// in; nil until an endpoint with write_relabel_configs sees the series.
	rel  atomic.Pointer[relabeled]
	seen atomic.Uint32 // the GC generation it was last used in
}

// relabeled is what write relabeling made of a series, per endpoint.
type relabeled struct {
	epoch uint64
	// enc is per endpoint: nil when the endpoint has no relabeling or it
	// left the labels as they were (they are encoded per sample), the
	// encoded labels when it changed them, dropped when it dropped them.
	enc [][]byte
}

// dropped marks a series write relabeling dropped; compared by address.
var dropped = []byte("dropped")

func isDropped(b []byte) bool { return len(b) > 0 && &b[0] == &dropped[0] }

func (c *seriesCache) init() {
	c.byHash = map[uint64]*series{}
	if c.hash == nil {
		c.hash = labels.Labels.Hash
	}
}

// get returns the series for ref, or for ls when ref is unknown or names
// another series. ls is kept: the caller must not modify it afterwards, as
// with Prometheus' appenders.
func (c *seriesCache) get(ref uint64, ls labels.Labels) *series {
	gen := c.gen.Load()
	c.mu.RLock()
	var s *series
	if ref-1 < uint64(len(c.slots)) {
		s = c.slots[ref-1]
	}
	c.mu.RUnlock()
	// The labels are usually the very string the series was made with, so
	// the check costs a pointer comparison. A series' labels never change:
	// one that GC forgets stays valid for whoever still holds it.
	if s != nil && labels.Equal(s.ls, ls) {
		if s.seen.Load() != gen {
			s.seen.Store(gen)
		}
		return s
	}
	h := c.hash(ls)
	c.mu.Lock()
	defer c.mu.Unlock()
	head := c.byHash[h]
	for x := head; x != nil; x = x.next {
		if labels.Equal(x.ls, ls) {
			x.seen.Store(gen)
			return x
		}
	}
	s = &series{ls: ls, next: head}
	if n := len(c.free); n > 0 {
		i := c.free[n-1]
		c.free = c.free[:n-1]
		c.slots[i] = s
		s.ref = uint64(i) + 1
	} else {
		c.slots = append(c.slots, s)
		s.ref = uint64(len(c.slots))
	}
	s.seen.Store(gen)
	c.byHash[h] = s
	return s
}

func (c *seriesCache) gc() {
	gen := c.gen.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.slots {
		if s == nil || s.seen.Load()+2 > gen {
			continue
		}
		c.slots[i] = nil
		c.free = append(c.free, uint32(i))
		c.unlink(s)
	}
	// Give back the tail of empty slots and their free-list entries, so
	// that a shrinking agent's slice shrinks too.
	n := len(c.slots)
	for n > 0 && c.slots[n-1] == nil {
		n--
	}
	if n < len(c.slots) {
		free := c.free[:0]
		for _, i := range c.free {
			if int(i) < n {
				free = append(free, i)
			}
		}
		c.free = free
		if n < cap(c.slots)/4 {
			c.slots = append([]*series(nil), c.slots[:n]...)
		} else {
			c.slots = c.slots[:n]
		}
	}
}

// unlink removes s from its hash chain.
func (c *seriesCache) unlink(s *series) {
	h := c.hash(s.ls)
	p := c.byHash[h]
	if p == s {
		if s.next == nil {
			delete(c.byHash, h)
		} else {
			c.byHash[h] = s.next
		}
		return
	}
	for ; p != nil; p = p.next {
		if p.next == s {
			p.next = s.next
			return
		}
	}
}

func (c *seriesCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.slots) - len(c.free)
}

// labelEncoder encodes a commit's series for its endpoints; one per
// appender, so that its buffers are reused from sample to sample.
type labelEncoder struct {
	ready bool
	plan  []endpointPlan
	relab bool // some endpoint relabels
	// same is the relabeling of every series that no endpoint changes or
	// drops, shared by them.
	same *relabeled
	buf  []byte
	out  [][]byte
}

// endpointPlan is an endpoint's view of the labels for a commit.
type endpointPlan struct {
	ext []labels.Label
	rcs []*relabel.Config
}

// encoded returns the labels of s encoded for each endpoint of epoch; nil
// for an endpoint whose write relabeling drops the series. The result is
// valid until the next call.
func (s *series) encoded(epoch uint64, eps []*endpoint, le *labelEncoder) [][]byte {
	le.prepare(eps)
	var rel *relabeled
	if le.relab {
		rel = s.relabeled(epoch, le)
	}
	return le.encode(s.ls, rel)
}

// encode returns ls encoded for each endpoint prepared: rel's encoding
// where write relabeling changed or dropped the series (nil rel: no
// endpoint relabels), else ls with the endpoint's external labels. The
// result is valid until the next call.
func (le *labelEncoder) encode(ls labels.Labels, rel *relabeled) [][]byte {
	le.buf = le.buf[:0]
	var ends [8]int
	end := ends[:0]
	for i, p := range le.plan {
		if rel != nil && rel.enc[i] != nil {
			end = append(end, len(le.buf))
			continue // dropped or changed: kept in rel
		}
		le.buf = encodeLabelsExt(le.buf, ls, p.ext)
		end = append(end, len(le.buf))
	}
	start := 0
	for i := range le.plan {
		switch {
		case rel != nil && isDropped(rel.enc[i]):
			le.out[i] = nil
		case rel != nil && rel.enc[i] != nil:
			le.out[i] = rel.enc[i]
		default:
			le.out[i] = le.buf[start:end[i]:end[i]]
		}
		start = end[i]
	}
	return le.out
}

// prepare reads the endpoints' external labels and relabeling once per
// commit.
func (le *labelEncoder) prepare(eps []*endpoint) {
	if le.ready {
		return
	}
	le.ready = true
	le.plan = make([]endpointPlan, len(eps))
	le.out = make([][]byte, len(eps))
	le.relab = false
	for i, e := range eps {
		ext, rcs := e.relabelFor()
		le.plan[i] = endpointPlan{ext: labelSlice(ext), rcs: rcs}
		le.relab = le.relab || len(rcs) > 0
	}
}

// relabeled returns the write relabeling of s for epoch, computing it on
// the first sample of the series in an epoch.
func (s *series) relabeled(epoch uint64, le *labelEncoder) *relabeled {
	if r := s.rel.Load(); r != nil && r.epoch == epoch && len(r.enc) == len(le.plan) {
		return r
	}
	r := &relabeled{epoch: epoch, enc: make([][]byte, len(le.plan))}
	same := true
	for i, p := range le.plan {
		if len(p.rcs) == 0 {
			continue
		}
		b := labels.NewBuilder(s.ls)
		for _, l := range p.ext {
			if !s.ls.Has(l.Name) {
				b.Set(l.Name, l.Value)
			}
		}
		in := b.Labels()
		if !relabel.ProcessBuilder(b, p.rcs...) {
			r.enc[i], same = dropped, false
			continue
		}
		if out := b.Labels(); !labels.Equal(in, out) {
			r.enc[i], same = encodeLabels(nil, out), false
		}
	}
	if same {
		if le.same == nil || le.same.epoch != epoch {
			le.same = r
		}
		r = le.same
	}
	s.rel.Store(r)
	return r
}

func labelSlice(ls labels.Labels) []labels.Label {
	var out []labels.Label
	ls.Range(func(l labels.Label) { out = append(out, l) })
	return out
}

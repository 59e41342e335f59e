package delivery

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// seriesCache gives each series a reference the scrape cache hands back on
// the next scrape, and keeps its labels encoded per endpoint (after
// external labels and write relabeling), so a sample costs a lookup and a
// copy. Series unseen for two GC rounds (10-20 minutes) are forgotten.
type seriesCache struct {
	mu     sync.RWMutex
	byRef  map[uint64]*series
	byHash map[uint64][]*series
	next   uint64
	gen    atomic.Uint64
}

type series struct {
	ref  uint64
	hash uint64
	ls   labels.Labels
	seen atomic.Uint64 // the GC generation it was last used in

	enc atomic.Pointer[encodedLabels]
}

type encodedLabels struct {
	epoch uint64
	enc   [][]byte // per endpoint of epoch; nil: dropped by relabeling
}

func (c *seriesCache) init() {
	c.byRef = map[uint64]*series{}
	c.byHash = map[uint64][]*series{}
}

// get returns the series for ref, or for ls when ref is unknown.
func (c *seriesCache) get(ref uint64, ls labels.Labels) *series {
	gen := c.gen.Load()
	c.mu.RLock()
	s := c.byRef[ref]
	c.mu.RUnlock()
	// A reference is never reused: the scrape cache hands back the one this
	// cache gave for the same series, as Prometheus' head trusts its refs.
	if s != nil {
		if s.seen.Load() != gen {
			s.seen.Store(gen)
		}
		return s
	}
	h := ls.Hash()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.byHash[h] {
		if labels.Equal(x.ls, ls) {
			x.seen.Store(gen)
			return x
		}
	}
	c.next++
	s = &series{ref: c.next, hash: h, ls: ls.Copy()}
	s.seen.Store(gen)
	c.byRef[s.ref] = s
	c.byHash[h] = append(c.byHash[h], s)
	return s
}

func (c *seriesCache) gc() {
	gen := c.gen.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, s := range c.byRef {
		if s.seen.Load()+2 > gen {
			continue
		}
		delete(c.byRef, ref)
		list := c.byHash[s.hash]
		for i, x := range list {
			if x == s {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(c.byHash, s.hash)
		} else {
			c.byHash[s.hash] = list
		}
	}
}

func (c *seriesCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byRef)
}

// encoded returns the labels encoded for each endpoint of epoch.
func (s *series) encoded(epoch uint64, eps []*endpoint) [][]byte {
	if e := s.enc.Load(); e != nil && e.epoch == epoch && len(e.enc) == len(eps) {
		return e.enc
	}
	enc := make([][]byte, len(eps))
	for i, e := range eps {
		ext, rcs := e.relabelFor()
		ls := s.ls
		if !ext.IsEmpty() || len(rcs) > 0 {
			b := labels.NewBuilder(ls)
			ext.Range(func(l labels.Label) {
				if !s.ls.Has(l.Name) {
					b.Set(l.Name, l.Value)
				}
			})
			if len(rcs) > 0 && !relabel.ProcessBuilder(b, rcs...) {
				continue
			}
			ls = b.Labels()
		}
		enc[i] = encodeLabels(make([]byte, 0, 64), ls)
	}
	s.enc.Store(&encodedLabels{epoch: epoch, enc: enc})
	return enc
}

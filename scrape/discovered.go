package scrape

import (
	"encoding/binary"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Discovered is what discovery found, per job, as ownership keys (the keys
// the Filter asks the Owner about).
type Discovered map[string]JobTargets

// JobTargets are one job's discovered targets.
type JobTargets struct {
	// Keys are the targets' ownership keys, sorted, without duplicates.
	Keys []uint64
	// Digest is a hash of Keys; equal digests mean equal targets.
	Digest uint64
}

// NewJobTargets makes the JobTargets of keys, which it sorts in place.
func NewJobTargets(keys []uint64) JobTargets {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	h := xxhash.New()
	var b [8]byte
	for _, k := range keys {
		binary.LittleEndian.PutUint64(b[:], k)
		_, _ = h.Write(b[:])
	}
	return JobTargets{Keys: keys, Digest: h.Sum64()}
}

// Has reports whether the job discovered key.
func (j JobTargets) Has(key uint64) bool {
	_, ok := slices.BinarySearch(j.Keys, key)
	return ok
}

// Digest combines every job's name and digest: equal digests mean the same
// jobs discovered the same targets. It is never 0, so that 0 can mean
// "unknown".
func (d Discovered) Digest() uint64 {
	jobs := make([]string, 0, len(d))
	for j := range d {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	h := xxhash.New()
	var b [8]byte
	for _, j := range jobs {
		_, _ = h.WriteString(j)
		_, _ = h.Write([]byte{0})
		binary.LittleEndian.PutUint64(b[:], d[j].Digest)
		_, _ = h.Write(b[:])
	}
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}

// Has reports whether any job discovered key.
func (d Discovered) Has(key uint64) bool {
	for _, j := range d {
		if j.Has(key) {
			return true
		}
	}
	return false
}

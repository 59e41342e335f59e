package scrape

import "github.com/prometheus/prometheus/discovery/targetgroup"

// A target's ownership key depends on the target and its job's scrape
// config only, never on membership, yet computing it relabels the target
// and builds its URL (scrape.PopulateLabels, about 10 µs on a busy core): a
// filter pass over a million targets spent 11 s on keys and 0.1 s asking
// the ring. keyCache keeps the keys of the current snapshot, so a pass that
// a membership change triggers only asks the owner. The cache is dropped
// whenever the snapshot or the configs are replaced (Run, ApplyConfig), so
// it never outlives the groups it describes; it costs 16 bytes a target.

// cachedKey is one target's key, or !ok when relabeling drops the target
// or Prometheus would refuse it.
type cachedKey struct {
	key uint64
	ok  bool
}

// groupRef names a group within a job: the same group may be discovered
// for two jobs, whose configs give other keys.
type groupRef struct {
	job   string
	group *targetgroup.Group
}

// keyCache maps each group of the snapshot to its targets' keys, in the
// order of Group.Targets. It is guarded by the Filter's mutex.
type keyCache map[groupRef][]cachedKey

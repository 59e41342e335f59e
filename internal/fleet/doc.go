// Package fleet measures what happens to the samples of a clustered scrape
// when the fleet changes: agents join and leave, restart, crash, and the
// receiver or Consul goes away. It drives real shoal processes, a real Consul
// and a strict Prometheus receiver (no out-of-order window, and no per-agent
// external label, so two agents scraping one target write one series and
// the receiver rejects their interleaved samples, as Mimir or Prometheus do
// in production) through the internal/e2e harness, on loopback.
//
// A scenario (Start, then Step per fleet change, then Finish) yields a Row:
// targets moved, the largest gap between two samples of a target, the
// targets that missed scrapes, duplicate samples, out-of-order rejections
// counted by the receiver and by shoal, and how long the agents took to
// agree again. The farm's farm_scrapes_total rises by exactly 1 per scrape,
// so a value the receiver never got across a gap is a scrape lost or
// rejected, and one skipped without a gap a scrape the fence discarded.
//
// The partition scenario needs root and iptables: it drops gossip between
// two groups of agents on loopback (Partition); the test fails without them
// when SHOAL_REQUIRE_INTEGRATION is set and is skipped otherwise.
//
// The scenarios are in fleet_test.go (load-aware placement's in
// placement_test.go, long only); `make fleet` runs their long version
// (go test -run TestFleet -v -timeout 60m ./internal/fleet/ -fleet.long).
package fleet

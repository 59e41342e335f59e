// Package bench measures shoal side by side with its peers, Prometheus in
// agent mode and vmagent, on one machine: the same synthetic targets (an
// in-process internal/farm registered in one Consul), the same scrape
// configuration and one Prometheus receiver. Each run is a child process
// measured the same way over the same steady window: CPU time from
// /proc/PID/stat, resident memory from /proc/PID/status, bytes sent from the
// process' own /metrics, and the samples that reached the receiver, which
// every run labels with its own external label, so that nothing counts that
// did not arrive.
//
// The machine is shared and noisy, so absolute figures mean little; runs are
// interleaved per repetition (shoal, prometheus, vmagent, fleet, shoal, ...)
// and reported as medians with their spread and as ratios between runs of
// the same repetition.
//
// cmd/shoal-bench is the command; hack/bench.sh builds and runs it.
package bench

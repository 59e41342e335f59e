// Package e2e runs the real shoal binary against real components and checks,
// from the samples that arrive at the remote-write receiver, that every
// target is scraped exactly once per interval by exactly one agent.
//
// The harness builds cmd/shoal once per test binary (Binary), starts agents
// as child processes on their own loopback ports (StartAgent, StartCluster),
// each with a Prometheus config it writes (consul_sd_configs on the farm's
// service, remote_write to the receiver), and analyzes the receiver's raw
// samples (Collect, Analyze). Consul, the receiver and the synthetic targets
// come from internal/testenv and internal/farm (StartEnv).
//
// Every agent adds the external label AgentLabel with its node name, so the
// receiver keeps one series per (target, agent): two agents scraping one
// target show up as two series whose samples interleave in time, instead of
// as out-of-order rejections that would hide one of them. Analyze merges the
// series of a target and counts gaps, overlaps and missing counter values.
//
// Like testenv, the helpers call t.Fatal and t.Skip: call them from the
// test's goroutine. Everything skips under -short and when the Consul or
// Prometheus binary is missing (SHOAL_REQUIRE_INTEGRATION=1 turns that into
// a failure).
package e2e

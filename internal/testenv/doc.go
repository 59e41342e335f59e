// Package testenv starts the real components shoal's integration tests, the
// demo and the benchmark run against: a Consul agent in dev mode and a
// Prometheus server acting as a remote-write receiver. Each runs as a child
// process (Process, the harness' one process type) on loopback ports, keeps
// its data in a directory of a Group, logs to a file whose tail a failed
// test prints, and is stopped when the Group closes. PromConfig is the one
// Prometheus configuration file the harness renders.
//
// The helpers return errors; tests wrap them with require.NoError and get
// their Group from ForTest. They never skip: a test calls SkipWithout first.
//
// The binaries are built by hack/build-deps.sh (`make deps`) into
// <repo>/.cache/bin. They are looked up, in order, in the environment
// variables SHOAL_CONSUL_BIN and SHOAL_PROMETHEUS_BIN, in <repo>/.cache/bin
// (the repository root is the nearest directory above the working directory
// that holds go.mod) and in $PATH. SkipWithout skips a test whose binary is
// missing, unless SHOAL_REQUIRE_INTEGRATION=1, which makes it fail; CI sets
// that so a broken build cannot silently turn integration tests into skips.
// It also skips under `go test -short`.
package testenv

// Package testenv starts the real components shoal's integration tests run
// against: a Consul agent in dev mode and a Prometheus server acting as a
// remote-write receiver. Each runs as a child process on free loopback ports,
// keeps its data in the test's temporary directory, logs to a file that is
// printed when the test fails, and is killed by t.Cleanup.
//
// The binaries are built by hack/build-deps.sh (`make deps`) into
// <repo>/.cache/bin. They are looked up, in order, in the environment
// variables SHOAL_CONSUL_BIN and SHOAL_PROMETHEUS_BIN, in <repo>/.cache/bin
// (the repository root is the nearest directory above the working directory
// that holds go.mod) and in $PATH. A missing binary skips the test, unless
// SHOAL_REQUIRE_INTEGRATION=1, which makes it fail; CI sets that so a broken
// build cannot silently turn integration tests into skips. Every Start
// function skips under `go test -short`.
//
// The helpers call t.Fatal and t.Skip, so call them from the test's own
// goroutine.
package testenv

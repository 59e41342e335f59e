// Package attacktest plays an operator's adversary against real shoal
// binaries: a memberlist member written in Go, as one would write it in 50
// lines, on another host than the fleet's.
//
// The "other host" is a network namespace of the test's own, joined to the
// test's namespace by a veth pair (NewNet): the agents listen on the host
// side's address, which is not loopback, so a default-configured agent
// refuses to gossip without a key; the attacker's sockets live inside the
// namespace, on the peer side's address. Creating the namespace needs root;
// the tests skip without it (and without Consul and Prometheus, like every
// integration test: see internal/e2e).
package attacktest

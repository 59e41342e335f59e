// Package swarmtest holds the test of deploy/swarm/stack.yml (TestSwarm,
// `make swarm`): a Go test that drives the docker CLI on a Docker Swarm
// manager, builds shoal's images locally (no registry is needed: the
// Dockerfile's runtime stages around host-built binaries, Consul and
// Prometheus in images FROM scratch around .cache/bin), deploys the stack
// file unchanged with `docker stack deploy`, scales the shoal service
// 3 -> 5 -> 3, rolls it with `docker service update --force`, and judges
// every phase at the receiver: no target may miss a scrape, and the
// receiver may refuse nothing as out of order. It prints a table of what it
// measured. It is too long for `make test` and runs only with the test
// flag -swarm (`make swarm`); given it, a machine without a usable swarm
// skips it, unless SHOAL_REQUIRE_INTEGRATION=1, which fails it. The package
// has no code; see its tests.
package swarmtest

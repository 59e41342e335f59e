// Package dockertest holds the test of shoal's container images: it runs
// hack/docker-test.sh, which builds the Dockerfile's runtime stages from
// host-built binaries (no registry needed), starts agents on a private Docker
// network and checks readiness and clustering. The package has no code; see
// docker_test.go.
package dockertest

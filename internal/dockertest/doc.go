// Package dockertest holds the test of shoal's container images
// (TestDockerImage, `make docker`): a Go test that drives the docker CLI,
// builds the Dockerfile's runtime stages from host-built binaries (no
// registry needed), starts agents on private Docker networks, checks
// readiness, clustering and a partition, and judges the receiver's samples
// with the fleet tests' analysis (internal/e2e). The package has no code;
// see its tests.
package dockertest

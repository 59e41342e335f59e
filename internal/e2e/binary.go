package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// Environment variables that control the shoal binary.
const (
	// EnvShoalBin names a prebuilt shoal binary to run instead of building
	// cmd/shoal.
	EnvShoalBin = "SHOAL_E2E_BIN"
	// EnvRace set to "1" builds shoal with -race, so that data races in the
	// agent fail its process (exit 66). Off by default: the build takes
	// minutes on a cold cache and the agents run slower.
	EnvRace = "SHOAL_E2E_RACE"
)

// build is the one build of cmd/shoal per test binary.
var build struct {
	once sync.Once
	dir  string // temporary directory holding the binary, removed by RemoveBinary
	path string
	err  error
}

// Binary returns the path of a shoal binary built from this repository's
// cmd/shoal, building it on the first call; later calls reuse it. Call
// RemoveBinary once done, e.g. from TestMain after the tests.
func Binary() (string, error) {
	if p := os.Getenv(EnvShoalBin); p != "" {
		return p, nil
	}
	build.once.Do(func() { build.dir, build.path, build.err = buildShoal() })
	return build.path, build.err
}

// SkipUnlessIntegration skips tb under -short or when Consul or Prometheus
// is missing (see testenv.SkipWithout), and builds the shoal binary, failing
// tb if that fails. Call it first in a test that runs agents.
func SkipUnlessIntegration(tb testing.TB) {
	tb.Helper()
	testenv.SkipWithout(tb, testenv.ConsulBinary, testenv.PrometheusBinary)
	if _, err := Binary(); err != nil {
		tb.Fatalf("e2e: %v", err)
	}
}

// VerifyTestMain runs a package's tests under goleak and removes the
// binary Binary built once they are over; call it from TestMain.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		RemoveBinary()
		os.Exit(code)
	}))
}

// RemoveBinary deletes the binary Binary built, if any. Call it once the
// tests are over, e.g. from goleak.Cleanup in TestMain.
func RemoveBinary() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

func buildShoal() (dir, path string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "shoal-e2e-")
	if err != nil {
		return "", "", fmt.Errorf("create build directory: %w", err)
	}
	path = filepath.Join(dir, "shoal")
	args := []string{"build", "-o", path}
	if os.Getenv(EnvRace) == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/shoal")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build ./cmd/shoal in %s: %w\n%s", root, err, out)
	}
	return dir, path, nil
}

// RepoRoot is the repository root: the first directory above the working
// directory that holds go.mod.
func RepoRoot() (string, error) { return testenv.RepoRoot() }

package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Environment variables that control how binaries are found.
const (
	// EnvConsulBin names the Consul binary to run, overriding the search.
	EnvConsulBin = "SHOAL_CONSUL_BIN"
	// EnvPrometheusBin names the Prometheus binary to run, overriding the search.
	EnvPrometheusBin = "SHOAL_PROMETHEUS_BIN"
	// EnvRequireIntegration set to "1" turns a missing binary from a skip
	// into a test failure.
	EnvRequireIntegration = "SHOAL_REQUIRE_INTEGRATION"
)

// cacheBinDir is where hack/build-deps.sh puts the binaries, relative to the
// repository root.
var cacheBinDir = filepath.Join(".cache", "bin")

// FindBinary returns the path of a component's binary ("consul" with
// EnvConsulBin, "prometheus" with EnvPrometheusBin) as StartConsul and
// StartReceiver find it, for tests that run it themselves; it skips or
// fails the test as they do.
func FindBinary(tb testing.TB, name, envVar string) string {
	tb.Helper()
	return findBinary(tb, name, envVar)
}

// findBinary returns the path of the named component's binary, or skips (or
// fails, see EnvRequireIntegration) the test when there is none. It also
// skips under -short, since everything that needs a binary is slow. Outside
// a test binary (a Standalone) there is no -short.
func findBinary(tb testing.TB, name, envVar string) string {
	tb.Helper()
	if testing.Testing() && testing.Short() {
		tb.Skipf("testenv: %s integration test skipped in -short mode", name)
	}
	if p := os.Getenv(envVar); p != "" {
		// An explicit setting that points nowhere is a mistake, not a reason to skip.
		if err := checkExecutable(p); err != nil {
			tb.Fatalf("testenv: $%s=%q: %v", envVar, p, err)
		}
		return p
	}
	var looked []string
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, cacheBinDir, name)
		if checkExecutable(p) == nil {
			return p
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("testenv: %s binary not found (looked at $%s, %v and $PATH); "+
		"build it with `hack/build-deps.sh %s` (or `make deps`) or set $%s",
		name, envVar, looked, name, envVar)
	if os.Getenv(EnvRequireIntegration) == "1" {
		tb.Fatal(msg + "; failing because " + EnvRequireIntegration + "=1")
	}
	tb.Skip(msg)
	return ""
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// RepoRoot walks up from the working directory (a package directory under
// go test) to the first directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

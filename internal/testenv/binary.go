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

// Binary is a component's executable: its name in <repo>/.cache/bin and
// $PATH, and the environment variable that overrides the search.
type Binary struct {
	Name, Env string
}

// The components' binaries.
var (
	ConsulBinary     = Binary{Name: "consul", Env: EnvConsulBin}
	PrometheusBinary = Binary{Name: "prometheus", Env: EnvPrometheusBin}
)

// ErrNoBinary is wrapped by Find's error when the binary is not there.
var ErrNoBinary = errors.New("binary not found")

// cacheBinDir is where hack/build-deps.sh puts the binaries, relative to the
// repository root.
var cacheBinDir = filepath.Join(".cache", "bin")

// Find returns the path of the binary: $Env if set, else
// <repo>/.cache/bin/Name, else Name in $PATH. Its error wraps ErrNoBinary
// when there is none; an $Env that points nowhere is a plain error.
func (b Binary) Find() (string, error) {
	if p := os.Getenv(b.Env); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("$%s=%q: %w", b.Env, p, err)
		}
		return p, nil
	}
	var looked []string
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, cacheBinDir, b.Name)
		if checkExecutable(p) == nil {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(b.Name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s %w (looked at $%s, %v and $PATH); build it with `hack/build-deps.sh %s` (or `make deps`) or set $%s",
		b.Name, ErrNoBinary, b.Env, looked, b.Name, b.Env)
}

// SkipWithout skips tb under -short, and when one of the binaries is
// missing, since everything that needs one is slow; with
// SHOAL_REQUIRE_INTEGRATION=1 a missing binary fails the test instead. Call
// it from the test goroutine before starting anything.
func SkipWithout(tb testing.TB, bins ...Binary) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("testenv: integration test skipped in -short mode")
	}
	for _, b := range bins {
		_, err := b.Find()
		switch {
		case err == nil:
		case errors.Is(err, ErrNoBinary) && os.Getenv(EnvRequireIntegration) != "1":
			tb.Skipf("testenv: %v", err)
		case errors.Is(err, ErrNoBinary):
			tb.Fatalf("testenv: %v; failing because %s=1", err, EnvRequireIntegration)
		default:
			tb.Fatalf("testenv: %v", err)
		}
	}
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

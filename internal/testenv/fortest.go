package testenv

import (
	"testing"
)

// The functions in this file adapt the harness to tests that take no
// Group: they fail (or skip) the test instead of returning an error.

// ForTest returns a Group for tb: its directories are under tb.TempDir()
// and tb.Cleanup closes it, failing the test when a stop fails. When the
// test has failed, the tails of every process' log are logged first.
func ForTest(tb testing.TB) *Group {
	tb.Helper()
	g := NewGroup(tb.TempDir())
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(g.LogTails())
		}
		if err := g.Close(); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return g
}

// StartConsul is RunConsul for a test: it skips without the binary (see
// SkipWithout), fails the test on error and stops Consul at its end.
func StartConsul(tb testing.TB) *Consul {
	tb.Helper()
	SkipWithout(tb, ConsulBinary)
	c, err := RunConsul(tb.Context(), ForTest(tb), ConsulOptions{})
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return c
}

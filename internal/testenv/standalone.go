package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// Standalone lets a program that is not a test (cmd/shoal-bench) use the
// helpers of this package, which take a testing.TB. Run calls a helper and
// turns its Fatal or Skip into an error; Close runs the cleanups the helpers
// registered (stopping the processes they started) and removes the
// directories TempDir made. Log lines go to Out. Its methods are safe for
// concurrent use, but Fatal and Skip must happen inside Run.
type Standalone struct {
	// embedded only to satisfy testing.TB's unexported method; every
	// method is implemented below, so it is never called.
	testing.TB

	dir string
	out io.Writer
	ctx context.Context //nolint:containedctx // testing.TB.Context returns it
	// cancel ends ctx at Close, as the testing package does before cleanups.
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	errs     []error
	failed   bool
	seq      int
}

// standaloneExit is the panic value Fatal and Skip use to end Run's function.
type standaloneExit struct{ err error }

// NewStandalone returns a Standalone whose temporary directories are made
// under dir and whose log lines go to out (nil discards them).
func NewStandalone(dir string, out io.Writer) *Standalone {
	if out == nil {
		out = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Standalone{dir: dir, out: out, ctx: ctx, cancel: cancel}
}

// Run calls f and returns the error of a Fatal or Skip in it, or of an
// Error logged while it ran.
func (s *Standalone) Run(f func()) error {
	s.mu.Lock()
	n := len(s.errs)
	s.mu.Unlock()
	if err := catch(f); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs[n:]...)
}

// catch calls f and returns the error of a Fatal or Skip in it.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			ex, ok := r.(standaloneExit)
			if !ok {
				panic(r)
			}
			err = ex.err
		}
	}()
	f()
	return nil
}

// Close runs the registered cleanups, last first, and returns the errors
// they reported.
func (s *Standalone) Close() error {
	s.cancel()
	s.mu.Lock()
	n := len(s.errs)
	cleanups := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for _, c := range slices.Backward(cleanups) {
		if err := catch(c); err != nil {
			s.record(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs[n:]...)
}

func (s *Standalone) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
	s.failed = true
}

func (s *Standalone) exit(err error) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(standaloneExit{err: err})
}

// Cleanup registers f to run at Close.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir makes a new directory under the Standalone's directory. Close
// removes it.
func (s *Standalone) TempDir() string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	d, err := os.MkdirTemp(s.dir, fmt.Sprintf("%03d-", n))
	if err != nil {
		s.Fatalf("testenv: create temporary directory: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Error logs and records an error; Run and Close return it.
func (s *Standalone) Error(args ...any) { s.Log(args...); s.record(errors.New(fmt.Sprint(args...))) }

// Errorf logs and records an error; Run and Close return it.
func (s *Standalone) Errorf(format string, args ...any) {
	s.Logf(format, args...)
	s.record(fmt.Errorf(format, args...))
}

// Fatal ends Run's function with an error.
func (s *Standalone) Fatal(args ...any) { s.exit(errors.New(fmt.Sprint(args...))) }

// Fatalf ends Run's function with an error.
func (s *Standalone) Fatalf(format string, args ...any) { s.exit(fmt.Errorf(format, args...)) }

// FailNow ends Run's function with an error.
func (s *Standalone) FailNow() { s.exit(errors.New("failed")) }

// Fail marks the Standalone failed.
func (s *Standalone) Fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }

// Failed reports whether an error was recorded; helpers then print logs.
func (s *Standalone) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }

// Skip ends Run's function with an error: outside a test there is nothing to skip.
func (s *Standalone) Skip(args ...any) { s.exit(errors.New(fmt.Sprint(args...))) }

// Skipf ends Run's function with an error.
func (s *Standalone) Skipf(format string, args ...any) { s.exit(fmt.Errorf(format, args...)) }

// SkipNow ends Run's function with an error.
func (s *Standalone) SkipNow() { s.exit(errors.New("skipped")) }

// Skipped reports false: a skip is an error here.
func (s *Standalone) Skipped() bool { return false }

// Log writes a line to Out.
func (s *Standalone) Log(args ...any) { fmt.Fprintln(s.out, args...) }

// Logf writes a line to Out.
func (s *Standalone) Logf(format string, args ...any) { fmt.Fprintf(s.out, format+"\n", args...) }

// Helper does nothing.
func (s *Standalone) Helper() {}

// Name returns "standalone".
func (s *Standalone) Name() string { return "standalone" }

// Setenv sets an environment variable for the rest of the process.
func (s *Standalone) Setenv(key, value string) {
	if err := os.Setenv(key, value); err != nil {
		s.Fatalf("testenv: setenv %s: %v", key, err)
	}
}

// Chdir changes the working directory for the rest of the process.
func (s *Standalone) Chdir(dir string) {
	if err := os.Chdir(dir); err != nil {
		s.Fatalf("testenv: chdir %s: %v", dir, err)
	}
}

// Context returns a context cancelled at Close.
func (s *Standalone) Context() context.Context { return s.ctx }

// Output returns Out.
func (s *Standalone) Output() io.Writer { return s.out }

// ArtifactDir returns the Standalone's directory.
func (s *Standalone) ArtifactDir() string { return s.dir }

// Attr writes the attribute as a log line.
func (s *Standalone) Attr(key, value string) { s.Logf("=== ATTR %s %s", key, value) }

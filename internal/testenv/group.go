package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Group owns what the harness starts: the directories it makes under one
// root and the stops Close runs, last first. Tests get one from ForTest;
// commands (shoal-demo, shoal-bench) make one with NewGroup and Close it
// themselves. Its methods are safe for concurrent use.
type Group struct {
	dir string

	mu    sync.Mutex
	seq   int
	stops []func() error
	procs []*Process
	notes []func() string
}

// NewGroup returns a Group whose directories are made under dir, which
// must exist.
func NewGroup(dir string) *Group { return &Group{dir: dir} }

// Dir makes a new directory for name under the group's root.
func (g *Group) Dir(name string) (string, error) {
	g.mu.Lock()
	g.seq++
	n := g.seq
	g.mu.Unlock()
	d := filepath.Join(g.dir, fmt.Sprintf("%03d-%s", n, strings.ReplaceAll(name, " ", "-")))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("create directory for %s: %w", name, err)
	}
	return d, nil
}

// prepare finds b's binary and makes the directory of the component name,
// what running any component starts with.
func (g *Group) prepare(b Binary, name string) (bin, dir string, err error) {
	if bin, err = b.Find(); err != nil {
		return "", "", err
	}
	dir, err = g.Dir(name)
	return bin, dir, err
}

// OnClose registers stop to run at Close, before the stops registered
// earlier.
func (g *Group) OnClose(stop func() error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stops = append(g.stops, stop)
}

// NewProcess describes a process logging to logPath whose log tail
// LogTails includes; it starts nothing, and Close kills it if it still
// runs (stop it first to stop it gracefully).
func (g *Group) NewProcess(name, bin, logPath string) *Process {
	p := NewProcess(name, bin, logPath)
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	g.OnClose(p.Kill)
	return p
}

// Note registers describe, whose text LogTails adds after the logs: what
// else a failure should show, such as Consul's failing checks.
func (g *Group) Note(describe func() string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notes = append(g.notes, describe)
}

// Close runs the registered stops, last first, and returns their errors.
// A second Close does nothing.
func (g *Group) Close() error {
	g.mu.Lock()
	stops := g.stops
	g.stops = nil
	g.mu.Unlock()
	var errs []error
	for _, stop := range slices.Backward(stops) {
		errs = append(errs, stop())
	}
	return errors.Join(errs...)
}

// LogTails returns the end of every process' log, each under a header
// line, for a failed test or command.
func (g *Group) LogTails() string {
	g.mu.Lock()
	procs, notes := slices.Clone(g.procs), slices.Clone(g.notes)
	g.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "testenv: %s log (%s), last %d KiB:\n%s\n", p.Name(), p.LogPath(), logTailBytes>>10, p.LogTail())
	}
	for _, n := range notes {
		b.WriteString(n())
	}
	return b.String()
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/bench"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeBin writes an executable file and returns its path.
func fakeBin(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	return p
}

func TestParseFlags(t *testing.T) {
	shoal, prom, vm := fakeBin(t, "shoal"), fakeBin(t, "prometheus"), fakeBin(t, "vmagent")
	var stderr bytes.Buffer

	cfg, err := parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-vmagent", vm}, &stderr)
	require.NoError(t, err)
	require.Equal(t, bench.DefaultTargets, cfg.Targets)
	require.Equal(t, 1000, cfg.Series)
	require.Equal(t, 5*time.Second, cfg.Interval)
	require.Equal(t, 60*time.Second, cfg.Duration)
	require.Equal(t, 3, cfg.Count)
	require.Equal(t, bench.RepeatedRuns, cfg.Runs)
	require.Equal(t, 10_000, cfg.NonOwnedTargets)
	require.False(t, cfg.Profile)
	require.Equal(t, vm, cfg.VMAgentBin)
	require.Contains(t, cfg.Out, filepath.Join(".cache", "bench"))
	require.FileExists(t, filepath.Join(cfg.RepoRoot, "go.mod"))

	cfg, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-targets", "7", "-series", "3",
		"-interval", "2s", "-duration", "10s", "-count", "1", "-only", "nonowned,shoal", "-out", "/tmp/x", "-profile"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, 7, cfg.Targets)
	require.Equal(t, 3, cfg.Series)
	require.Equal(t, 2*time.Second, cfg.Interval)
	require.Equal(t, 10*time.Second, cfg.Duration)
	require.Equal(t, 1, cfg.Count)
	require.Equal(t, []string{bench.RunShoal, bench.RunNonOwned}, cfg.Runs)
	require.Equal(t, "/tmp/x", cfg.Out)
	require.True(t, cfg.Profile)

	t.Setenv("PATH", t.TempDir())
	cfg, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom}, &stderr)
	require.NoError(t, err)
	require.Empty(t, cfg.VMAgentBin, "no vmagent in PATH: the run is skipped")
	require.Empty(t, cfg.GoBin)

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-shoal", filepath.Join(t.TempDir(), "none"), "-prometheus", prom}, "-shoal: "},
		{[]string{"-shoal", shoal, "-prometheus", t.TempDir()}, "is not an executable file"},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-vmagent", "/nonexistent/vmagent"}, "-vmagent: "},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-only", "alloy"}, `-only: unknown run "alloy"`},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-count", "0"}, "count must be at least 1"},
		{[]string{"-shoal", shoal, "-prometheus", prom, "extra"}, "unexpected arguments"},
		{[]string{"-nosuchflag"}, "flag provided but not defined"},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-scale", "2m"}, `-scale: size "2m": unknown name`},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-scale", "10k", "-only", "shoal,fleet"}, "a scale run compares only shoal,candidate,prometheus,vmagent, got runs shoal,fleet"},
		{[]string{"-shoal", shoal, "-prometheus", prom, "-plot", "x.png"}, "a plot needs a scale run"},
		{[]string{"-plot.from", "raw.txt"}, "-plot.from needs -plot"},
	} {
		_, err := parseFlags(tc.args, &stderr)
		require.ErrorContains(t, err, tc.err, "%v", tc.args)
	}
}

func TestRunExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "-nonowned.targets")
	stderr.Reset()
	require.Equal(t, exitUsage, run([]string{"-count", "x"}, &stdout, &stderr))
	require.Equal(t, exitUsage, run([]string{"-shoal", "/nonexistent"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "go build -o bin/shoal ./cmd/shoal")
}

func TestParseFlagsScale(t *testing.T) {
	shoal, prom := fakeBin(t, "shoal"), fakeBin(t, "prometheus")
	var stderr bytes.Buffer
	opts, err := parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-scale", "10k,1m", "-plot", "c.png"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []bench.Shape{bench.ScaleShapes[0], bench.ScaleShapes[3]}, opts.Scale)
	require.Equal(t, bench.ScaleRuns, opts.Runs, "a scale run compares the three agents")
	require.Equal(t, "c.png", opts.Plot)
	require.Empty(t, opts.plotFrom)

	opts, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-scale", "50x20@2s", "-only", "vmagent,shoal"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []string{bench.RunShoal, bench.RunVMAgent}, opts.Runs)

	// A candidate is a second shoal binary with its own flags, measured
	// next to shoal; without the run its flags are a mistake.
	cand := fakeBin(t, "shoal-candidate")
	opts, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-scale", "100k", "-only", "vmagent,candidate,shoal", "-candidate", cand, "-candidate.args", "--a=1  --b=2"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []string{bench.RunShoal, bench.RunCandidate, bench.RunVMAgent}, opts.Runs)
	require.Equal(t, cand, opts.CandidateBin)
	require.Equal(t, []string{"--a=1", "--b=2"}, opts.CandidateArgs)
	opts, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-only", "shoal,candidate"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, shoal, opts.CandidateBin, "the candidate defaults to -shoal")
	_, err = parseFlags([]string{"-shoal", shoal, "-prometheus", prom, "-candidate.args", "--a=1"}, &stderr)
	require.ErrorContains(t, err, "need the candidate run")

	// -plot.from runs nothing, so it needs no binaries.
	opts, err = parseFlags([]string{"-shoal", "/nonexistent", "-plot.from", "raw.txt", "-plot", "c.png"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, "raw.txt", opts.plotFrom)
}

func TestReplot(t *testing.T) {
	dir := t.TempDir()
	sh := bench.ScaleShapes[0]
	r := bench.ScaleResult{Shape: sh, Result: bench.Result{Run: bench.RunShoal, Rep: 1, Label: "shoal-10k-1", Agents: 1,
		Targets: sh.Targets, Interval: sh.Interval, Window: time.Minute, CPU: time.Second, Samples: 120_000, Series: 10_000,
		RSS: 20e6, HWM: 25e6, Anon: 10e6}}
	raw := filepath.Join(dir, "raw.txt")
	require.NoError(t, os.WriteFile(raw, []byte("SCALE-NOTE x\n"+r.RawLine()+"\n"), 0o644))
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "c.png")
	require.Equal(t, 0, run([]string{"-plot.from", raw, "-plot", out}, &stdout, &stderr), stderr.String())
	require.FileExists(t, out)
	require.Contains(t, stdout.String(), "PLOT "+out)
	require.Contains(t, stdout.String(), "CURVE 10k")

	require.NoError(t, os.WriteFile(raw, []byte("SCALE size=10k\n"), 0o644))
	require.Equal(t, exitFailure, run([]string{"-plot.from", raw, "-plot", out}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "line 1: no field")
}

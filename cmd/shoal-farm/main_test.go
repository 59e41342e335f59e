package main

import (
	"bufio"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"positional", []string{"extra"}, 2, "unexpected arguments"},
		{"invalid config", []string{"--targets", "2", "--unhealthy", "3"}, 1, "unhealthy must be between 0 and targets (2), got 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			require.Equal(t, tc.code, run(tc.args, &stdout, &stderr))
			require.Contains(t, stderr.String(), tc.err)
		})
	}
}

// TestRunWithConsul runs the command in-process: it prints its targets,
// registers them, and on SIGINT deregisters and exits 0.
func TestRunWithConsul(t *testing.T) {
	testenv.SkipWithout(t, testenv.ConsulBinary)
	c := testenv.StartConsul(t)
	client := c.Client()

	pr, pw := io.Pipe()
	var code int
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer pw.Close()
		code = run([]string{
			"--targets", "3", "--series", "2", "--unhealthy", "1",
			"--consul.address", c.Addr, "--consul.service", "farm-cmd", "--tags", "x, y",
		}, pw, io.Discard)
	}()
	// If the test fails early, stop run so it does not outlive the test.
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGINT)
			<-done
		}
	})

	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "farm: ") {
			break
		}
	}
	require.Len(t, lines, 4, "output: %q", lines)
	require.Regexp(t, `^target-0 127\.0\.0\.1:\d+ healthy=true$`, lines[0])
	require.Regexp(t, `^target-2 127\.0\.0\.1:\d+ healthy=false$`, lines[2])
	require.Equal(t, `farm: 3 targets (2 healthy, 1 unhealthy), 2 series each, registered as service "farm-cmd" in consul at `+c.Addr, lines[3])
	go func() { _, _ = io.Copy(io.Discard, pr) }() // drain until run returns

	// The agent syncs its registrations into the catalog asynchronously.
	var services []*api.CatalogService
	require.Eventually(t, func() bool {
		var err error
		services, _, err = client.Catalog().Service("farm-cmd", "", nil)
		return err == nil && len(services) == 3
	}, 30*time.Second, 50*time.Millisecond)
	require.ElementsMatch(t, []string{"x", "y"}, services[0].ServiceTags)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	<-done
	require.Equal(t, 0, code)
	require.Eventually(t, func() bool {
		services, _, err := client.Catalog().Service("farm-cmd", "", nil)
		return err == nil && len(services) == 0
	}, 30*time.Second, 50*time.Millisecond)
}

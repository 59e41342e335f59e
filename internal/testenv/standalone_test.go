package testenv

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStandalone(t *testing.T) {
	var out bytes.Buffer
	s := NewStandalone(t.TempDir(), &out)

	var order []int
	var dir string
	require.NoError(t, s.Run(func() {
		dir = s.TempDir()
		s.Cleanup(func() { order = append(order, 1) })
		s.Cleanup(func() { order = append(order, 2) })
		s.Logf("hello %d", 1)
	}))
	require.DirExists(t, dir)
	require.Equal(t, "hello 1\n", out.String())
	require.False(t, s.Failed())

	reached := false
	err := s.Run(func() {
		s.Fatalf("boom %d", 2)
		reached = true
	})
	require.EqualError(t, err, "boom 2")
	require.False(t, reached, "Fatalf must end the function")
	require.True(t, s.Failed())

	require.EqualError(t, s.Run(func() { s.Skip("no binary") }), "no binary")
	require.EqualError(t, s.Run(func() { s.Errorf("soft %s", "error") }), "soft error")
	require.NoError(t, s.Run(func() {}), "an earlier error is not reported again")

	ctx := s.Context()
	s.Cleanup(func() { s.Errorf("cleanup failed") })
	require.EqualError(t, s.Close(), "cleanup failed")
	require.Error(t, ctx.Err(), "Close cancels the context")
	require.Equal(t, []int{2, 1}, order, "cleanups run last first")
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "Close removes temporary directories")
	require.NoError(t, s.Close(), "a second Close does nothing")
}

func TestProcessPidNotRunning(t *testing.T) {
	p := NewProcess("none", "/bin/true", "")
	require.Zero(t, p.Pid())
}

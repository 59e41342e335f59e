//go:build unix

package e2e

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReservePortsReleaseOnce checks that releasing twice leaves alone the
// socket that took a released descriptor's number in between: a second
// close once shut another test's farm target, which Consul then saw refuse
// connections.
func TestReservePortsReleaseOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	release, err := reservePorts([]int{port})
	require.NoError(t, err)
	release()
	// The lowest free descriptor numbers are the ones just released.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer other.Close()
	release()

	c, err := net.Dial("tcp", other.Addr().String())
	require.NoError(t, err, "the listener opened after the first release still accepts")
	require.NoError(t, c.Close())
}

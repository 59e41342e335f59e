package gossip

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveAdvertiseInterface(t *testing.T) {
	lo := ""
	ifs, err := net.Interfaces()
	require.NoError(t, err)
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			lo = ifi.Name
		}
	}
	if lo == "" {
		t.Skip("no loopback interface")
	}
	c := Config{BindAddr: "0.0.0.0:7946", AdvertiseInterface: lo}
	require.NoError(t, c.ResolveAdvertise())
	require.Equal(t, "127.0.0.1:7946", c.AdvertiseAddr)
	require.NoError(t, c.ResolveAdvertise(), "a second call (a copy validated again) keeps it")
	require.Equal(t, "127.0.0.1:7946", c.AdvertiseAddr)

	c = Config{BindAddr: "0.0.0.0:7946", AdvertiseInterface: "nosuch0"}
	require.ErrorContains(t, c.ResolveAdvertise(), `--cluster.advertise-interface "nosuch0"`)
	c = Config{BindAddr: "0.0.0.0:7946", AdvertiseInterface: lo, AdvertiseAddr: "10.0.0.1:7946"}
	require.ErrorContains(t, c.ResolveAdvertise(), "give only one")
	c = Config{BindAddr: "0.0.0.0:7946"}
	require.NoError(t, c.ResolveAdvertise())
	require.Empty(t, c.AdvertiseAddr, "without the flag nothing changes")
}

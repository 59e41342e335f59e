package agent

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseJoin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want joinSpec
		err  string
	}{
		{in: "10.0.0.1:7946", want: joinSpec{kind: "static", host: "10.0.0.1", port: 7946}},
		{in: "shoal-1:7946", want: joinSpec{kind: "static", host: "shoal-1", port: 7946}},
		{in: "[::1]:7946", want: joinSpec{kind: "static", host: "::1", port: 7946}},
		{in: "dns+shoal:7946", want: joinSpec{kind: "dns", host: "shoal", port: 7946}},
		{in: "dns+_gossip._tcp.shoal.example.org", want: joinSpec{kind: "dnssrv", host: "_gossip._tcp.shoal.example.org"}},
		{in: "consul+shoal", want: joinSpec{kind: "consul", host: "shoal"}},
		{in: "shoal-1", err: `--cluster.join "shoal-1": want host:port`},
		{in: "shoal-1:99999", err: `port must be between 1 and 65535, got "99999"`},
		{in: ":7946", err: "host must not be empty"},
		{in: "consul+", err: "consul+ must be followed by a Consul service name"},
		{in: "consul+a:1", err: "consul+ must be followed by a Consul service name"},
		{in: "dns+", err: "dns+ must be followed by name:port"},
		{in: "dns+x:port", err: `port must be between 1 and 65535, got "port"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseJoin(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

type fakeResolver struct {
	hosts map[string][]string
	srv   map[string][]*net.SRV
}

func (f fakeResolver) LookupHost(_ context.Context, h string) ([]string, error) {
	if a, ok := f.hosts[h]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (f fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	if a, ok := f.srv[name]; ok {
		return name, a, nil
	}
	return "", nil, errors.New("no such host")
}

func TestPeerProvider(t *testing.T) {
	res := fakeResolver{
		hosts: map[string][]string{"shoal": {"10.0.0.2", "10.0.0.1"}, "a.x": {"10.0.1.1"}, "static": {"10.0.2.1"}},
		srv:   map[string][]*net.SRV{"_g._tcp.x": {{Target: "a.x.", Port: 7000}}},
	}
	consul := func(_ context.Context, svc string) ([]string, error) {
		if svc == "shoal" {
			return []string{"10.0.0.9:7946", "10.0.0.1:7946"}, nil
		}
		return nil, errors.New("consul unreachable")
	}
	specs := func(ins ...string) []joinSpec {
		var out []joinSpec
		for _, in := range ins {
			s, err := parseJoin(in)
			require.NoError(t, err)
			out = append(out, s)
		}
		return out
	}
	ctx := context.Background()

	got, err := peerProvider(specs("dns+shoal:7946", "consul+shoal", "dns+_g._tcp.x", "static:1"), res, consul)(ctx)
	require.NoError(t, err)
	// Every name is resolved here, SRV targets and host:port names too:
	// gossip compares members by IP.
	require.Equal(t, []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.9:7946", "10.0.1.1:7000", "10.0.2.1:1"}, got)

	// A failing spec does not hide the others.
	got, err = peerProvider(specs("consul+down", "dns+shoal:1"), res, consul)(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)

	// All failing: the errors name what failed.
	_, err = peerProvider(specs("consul+down", "dns+nowhere:1"), res, consul)(ctx)
	require.ErrorContains(t, err, `list consul service "down": consul unreachable`)
	require.ErrorContains(t, err, "resolve nowhere")

	_, err = peerProvider(specs("consul+shoal"), res, nil)(ctx)
	require.ErrorContains(t, err, "needs --consul.address")
}

// FuzzParseJoin: --cluster.join values come from flags, the environment and
// deployment templates. Parsing never panics; what parses has a known kind,
// a usable host and port, and reads back the same when written out again.
func FuzzParseJoin(f *testing.F) {
	for _, s := range []string{"10.0.0.1:7946", "shoal-1:7946", "[::1]:7946", "dns+shoal:7946", "dns+_gossip._tcp.shoal.example.org",
		"consul+shoal", "shoal-1", "shoal-1:99999", ":7946", "consul+", "consul+a:1", "dns+", "dns+x:port", "dns+[::1]:1", "a:b:c", "dns+dns+x:1", "[fe80::1%eth0]:7946"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := parseJoin(s)
		if err != nil {
			require.Contains(t, err.Error(), "--cluster.join ", "errors name the flag")
			return
		}
		require.NotEmpty(t, j.host)
		var again string
		switch j.kind {
		case "static", "dns":
			require.True(t, j.port >= 1 && j.port <= 65535, "port %d", j.port)
			again = net.JoinHostPort(j.host, strconv.Itoa(j.port))
			if j.kind == "dns" {
				again = prefixDNS + again
			}
		case "dnssrv":
			require.Zero(t, j.port)
			require.NotContains(t, j.host, ":")
			again = prefixDNS + j.host
		case "consul":
			require.Zero(t, j.port)
			require.False(t, strings.ContainsAny(j.host, ":/ "), "service %q", j.host)
			again = prefixConsul + j.host
		default:
			t.Fatalf("unknown kind %q", j.kind)
		}
		j2, err := parseJoin(again)
		require.NoError(t, err, "%q written out as %q", s, again)
		require.Equal(t, j, j2)
	})
}

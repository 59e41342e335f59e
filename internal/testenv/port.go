package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// issuedPorts remembers every port handed out in this test binary, so that two
// callers never get the same one even if the kernel reuses a just-closed port.
var issuedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// maxPortAttempts bounds the search for a port that is free for both TCP and
// UDP and not yet issued; a handful of attempts is plenty on a loopback.
const maxPortAttempts = 200

// FreePort, for tests, returns a loopback port that was free for both TCP and UDP (Consul's
// DNS and Serf ports need both) and that no other caller in this test binary
// has been given. The port is released before it returns, so another process
// can still take it; that race is accepted for tests. It fails tb when there
// is none. Code that returns errors calls FreePorts.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := FreePorts(1)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return p[0]
}

// Port returns one port as FreePort does, or an error.
func Port() (int, error) {
	p, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// FreePorts returns n distinct free ports; see FreePort.
func FreePorts(n int) ([]int, error) {
	issuedPorts.Lock()
	defer issuedPorts.Unlock()

	ports := make([]int, 0, n)
	// Hold every listener until all n are found so the kernel cannot hand
	// the same port out twice.
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt >= maxPortAttempts {
			return nil, fmt.Errorf("no free loopback port after %d attempts", maxPortAttempts)
		}
		l, err := net.Listen("tcp", Loopback(candidatePort()))
		if err != nil {
			continue // taken: try another candidate
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		if issuedPorts.m[port] {
			continue
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		closers = append(closers, u.Close)
		issuedPorts.m[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// Ports are drawn below the kernel's ephemeral range: a port from that range
// can be taken by any outgoing connection while the component that owns it
// is stopped (Consul or the receiver in an outage test), and its restart then
// fails with "address already in use".
const minTestPort = 10000

// candidatePort returns a random port between minTestPort and the start of
// the ephemeral range, or 0 (let the kernel choose) if there is no room.
func candidatePort() int {
	lo := ephemeralLow()
	if lo-minTestPort < 1000 {
		return 0
	}
	return minTestPort + rand.IntN(lo-minTestPort)
}

// ephemeralLow reads the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768 // Linux default
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}

// Loopback returns "127.0.0.1:port".
func Loopback(port int) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
}

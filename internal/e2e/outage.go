package e2e

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// The ports of a stopped component are free for anyone, and the kernel hands
// free ports in its ephemeral range (where testenv.FreePort finds them) to
// outgoing connections: under load, a restart on the same port then fails
// with "address already in use". StopConsul and StopReceiver hold the ports
// while the component is down, so that it can come back; connections to
// them are refused meanwhile, as when nothing listens.

// consulPorts matches the ports testenv passes to Consul in -hcl, which the
// first line of its log repeats.
var consulPorts = regexp.MustCompile(`(?m)^\s*(?:http|dns|serf_lan|serf_wan|server|grpc) = (\d+)$`)

// StopConsul stops Consul and holds its ports until StartConsul.
func (e *Env) StopConsul(tb testing.TB) {
	tb.Helper()
	e.Consul.Stop()
	var ports []int
	if log, err := os.ReadFile(e.Consul.LogPath); err == nil {
		for _, m := range consulPorts.FindAllSubmatch(log, 6) {
			p, _ := strconv.Atoi(string(m[1]))
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 { // the log format changed: hold what is known
		ports = append(ports, portOf(tb, e.Consul.Addr), portOf(tb, e.Consul.DNSAddr))
	}
	e.holdConsul = e.hold(tb, ports)
}

// StartConsul releases Consul's ports and starts it again.
func (e *Env) StartConsul(tb testing.TB) {
	tb.Helper()
	release(&e.holdConsul)
	e.Consul.Start()
}

// StopReceiver stops the receiver and holds its port until StartReceiver.
func (e *Env) StopReceiver(tb testing.TB) {
	tb.Helper()
	e.Receiver.Stop()
	u, err := url.Parse(e.Receiver.URL)
	if err != nil {
		tb.Fatalf("e2e: receiver url: %v", err)
	}
	e.holdReceiver = e.hold(tb, []int{portOf(tb, u.Host)})
}

// StartReceiver releases the receiver's port and starts it again.
func (e *Env) StartReceiver(tb testing.TB) {
	tb.Helper()
	release(&e.holdReceiver)
	e.Receiver.Start()
}

func (e *Env) hold(tb testing.TB, ports []int) func() {
	tb.Helper()
	rel, err := reservePorts(ports)
	if err != nil {
		tb.Fatalf("e2e: hold ports %v: %v", ports, err)
	}
	tb.Cleanup(rel) // rel closes once, whoever calls it first
	return rel
}

func release(f *func()) {
	if *f != nil {
		(*f)()
		*f = nil
	}
}

func portOf(tb testing.TB, hostPort string) int {
	tb.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		tb.Fatalf("e2e: %v", err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatalf("e2e: port of %q: %v", hostPort, err)
	}
	return n
}

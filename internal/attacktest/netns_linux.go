package attacktest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// namePrefix names this package's namespaces: <prefix><pid>-<n>.
// Namespaces with this prefix whose process is gone are left-overs of a
// killed run.
const namePrefix = "shoal-atk-"

// seq numbers the namespaces of this process.
var seq atomic.Int64

// subnets are the /24s NewNet may use, 10.213.<n>.0/24, taken in turn from
// one chosen by the process id, so that concurrent runs use different ones.
const subnetFirst, subnetCount = 20, 200

// Net is a network namespace joined to the test's by a veth pair: HostIP is
// this side's address, PeerIP the namespace's. Traffic between them goes
// over the veth pair, never over loopback.
type Net struct {
	Name           string
	HostIP, PeerIP string
}

// NewNet creates a namespace and its veth pair on a free 10.213.<n>.0/24.
// It needs root (CAP_NET_ADMIN) and the ip command. Close removes both.
func NewNet() (*Net, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("ip command (iproute2): %w", err)
	}
	removeStale()
	pid, i := os.Getpid(), int(seq.Add(1))
	subnet, err := freeSubnet(pid + i)
	if err != nil {
		return nil, err
	}
	n := &Net{
		Name:   fmt.Sprintf("%s%d-%d", namePrefix, pid, i),
		HostIP: fmt.Sprintf("10.213.%d.1", subnet),
		PeerIP: fmt.Sprintf("10.213.%d.2", subnet),
	}
	// Interface names have at most 15 bytes.
	host, peer := fmt.Sprintf("sa%dx%dh", pid, i), fmt.Sprintf("sa%dx%dp", pid, i)
	steps := [][]string{
		{"netns", "add", n.Name},
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", n.Name},
		{"addr", "add", n.HostIP + "/24", "dev", host},
		{"link", "set", host, "up"},
		{"-n", n.Name, "addr", "add", n.PeerIP + "/24", "dev", peer},
		{"-n", n.Name, "link", "set", peer, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			_ = n.Close()
			_ = ip("link", "del", host)
			return nil, err
		}
	}
	return n, nil
}

// Close deletes the namespace, which deletes the veth pair with it.
func (n *Net) Close() error { return ip("netns", "del", n.Name) }

// Do runs f with the calling goroutine's thread inside the namespace:
// sockets f creates (listeners, memberlist's transport) belong to it and
// keep it afterwards. Goroutines f starts do not run in it, and f must not
// rely on outgoing connections being made from inside: only sockets
// created within f are.
func (n *Net) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := os.Open(filepath.Join(netnsDir, n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open network namespace %s: %w", n.Name, err)
			return
		}
		defer func() { _ = target.Close() }()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := setns(orig); err != nil {
			// The thread stays locked and ends with this goroutine, so that
			// nothing else runs in the namespace by accident.
			errc <- fmt.Errorf("leave network namespace %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen listens on PeerIP:port inside the namespace (port 0: any).
func (n *Net) Listen(port int) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(n.PeerIP, strconv.Itoa(port)))
		return err
	})
	return l, err
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// freeSubnet returns the first n, from one chosen by seed, such that no
// interface has an address in 10.213.<n>.0/24.
func freeSubnet(seed int) (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, fmt.Errorf("list interface addresses: %w", err)
	}
	used := map[int]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if v4 := ipn.IP.To4(); v4 != nil && v4[0] == 10 && v4[1] == 213 {
				used[int(v4[2])] = true
			}
		}
	}
	for i := range subnetCount {
		s := subnetFirst + (seed+i)%subnetCount
		if !used[s] {
			return s, nil
		}
	}
	return 0, errors.New("no free 10.213.<n>.0/24 for a test network namespace")
}

// removeStale deletes this package's namespaces whose test process is gone
// (a run that was killed before its cleanup).
func removeStale() {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue // its process still runs
		}
		_ = ip("netns", "del", e.Name())
	}
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
)

// partitionChain is the iptables chain holding a partition's rules, hooked
// into OUTPUT on the loopback interface.
const partitionChain = "SHOAL-FLEET-PARTITION"

// partitionSupported says why a loopback partition cannot be made here, or
// nil: it needs root and iptables.
func partitionSupported() error {
	if os.Geteuid() != 0 {
		return errors.New("a loopback partition needs root (iptables)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return fmt.Errorf("a loopback partition needs iptables: %w", err)
	}
	return nil
}

// Partition cuts gossip between two groups of agents on loopback until heal
// is called: memberlist's UDP packets leave from the gossip listener, so
// UDP between one group's gossip ports and the other's is dropped, and TCP
// to every agent's gossip port is dropped (a TCP connection's source port
// says nothing of its group). Within a group, UDP gossip and failure
// detection go on; only memberlist's periodic TCP state sync fails there.
// Consul, the receiver and the targets stay reachable from both sides.
func (f *Fleet) Partition(a, b []*e2e.Agent) (heal func(), err error) {
	if err := partitionSupported(); err != nil {
		return nil, err
	}
	pa, err := gossipPorts(a)
	if err != nil {
		return nil, err
	}
	pb, err := gossipPorts(b)
	if err != nil {
		return nil, err
	}
	all := append(slices.Clone(pa), pb...)
	cleanupPartition()
	rules := [][]string{
		{"-N", partitionChain},
		{"-A", partitionChain, "-p", "udp", "-m", "multiport", "--sports", strings.Join(pa, ","), "-m", "multiport", "--dports", strings.Join(pb, ","), "-j", "DROP"},
		{"-A", partitionChain, "-p", "udp", "-m", "multiport", "--sports", strings.Join(pb, ","), "-m", "multiport", "--dports", strings.Join(pa, ","), "-j", "DROP"},
		{"-A", partitionChain, "-p", "tcp", "-m", "multiport", "--dports", strings.Join(all, ","), "-j", "DROP"},
		{"-I", "OUTPUT", "-o", "lo", "-j", partitionChain},
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", r...).CombinedOutput(); err != nil {
			cleanupPartition()
			return nil, fmt.Errorf("iptables %s: %w: %s", strings.Join(r, " "), err, out)
		}
	}
	f.tb.Cleanup(cleanupPartition)
	return cleanupPartition, nil
}

// cleanupPartition removes the partition's rules, if any.
func cleanupPartition() {
	_ = exec.Command("iptables", "-D", "OUTPUT", "-o", "lo", "-j", partitionChain).Run()
	_ = exec.Command("iptables", "-F", partitionChain).Run()
	_ = exec.Command("iptables", "-X", partitionChain).Run()
}

func gossipPorts(agents []*e2e.Agent) ([]string, error) {
	var ports []string
	for _, a := range agents {
		_, port, err := net.SplitHostPort(a.GossipAddr)
		if err != nil {
			return nil, fmt.Errorf("agent %s gossip address %q: %w", a.Name, a.GossipAddr, err)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// WaitSides waits until the agents of each side list exactly their side as
// active members, and returns how long that took from since.
func (f *Fleet) WaitSides(since time.Time, sides ...[]*e2e.Agent) time.Duration {
	f.tb.Helper()
	ctx := f.tb.Context()
	deadline := time.Now().Add(e2e.ConvergeTimeout)
	for {
		err := f.sidesSplit(ctx, sides)
		if err == nil {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			f.tb.Fatalf("fleet: %s: the sides did not split within %v: %v", f.Name, e2e.ConvergeTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *Fleet) sidesSplit(ctx context.Context, sides [][]*e2e.Agent) error {
	for _, side := range sides {
		var want []string
		for _, a := range side {
			want = append(want, a.Name)
		}
		slices.Sort(want)
		for _, a := range side {
			m, err := a.Members(ctx)
			if err != nil {
				return err
			}
			active := m.Active()
			if !slices.Equal(active, want) {
				return fmt.Errorf("%s: active %v, want %v", a.Name, active, want)
			}
		}
	}
	return nil
}

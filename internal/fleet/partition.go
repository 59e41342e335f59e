package fleet

import (
	"bytes"
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
func (f *Fleet) Partition(a, b []*e2e.Agent) (heal func() error, err error) {
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
	_ = removePartition() // a previous run's, if any
	rules := [][]string{
		{"-N", partitionChain},
		{"-A", partitionChain, "-p", "udp", "-m", "multiport", "--sports", strings.Join(pa, ","), "-m", "multiport", "--dports", strings.Join(pb, ","), "-j", "DROP"},
		{"-A", partitionChain, "-p", "udp", "-m", "multiport", "--sports", strings.Join(pb, ","), "-m", "multiport", "--dports", strings.Join(pa, ","), "-j", "DROP"},
		{"-A", partitionChain, "-p", "tcp", "-m", "multiport", "--dports", strings.Join(all, ","), "-j", "DROP"},
		{"-I", "OUTPUT", "-o", "lo", "-j", partitionChain},
	}
	// Closing the group removes the rules if the scenario ends before heal.
	f.Env.Group.OnClose(func() error { _ = removePartition(); return nil })
	for _, r := range rules {
		if err := iptables(r...); err != nil {
			return nil, errors.Join(err, removePartition())
		}
	}
	return removePartition, nil
}

// removePartition removes the partition's rules: the hook, then the chain.
func removePartition() error {
	var errs []error
	for _, r := range [][]string{{"-D", "OUTPUT", "-o", "lo", "-j", partitionChain}, {"-F", partitionChain}, {"-X", partitionChain}} {
		errs = append(errs, iptables(r...))
	}
	return errors.Join(errs...)
}

func iptables(args ...string) error {
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
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
// active members, and returns how long that took from since; it returns an
// error when they do not within e2e.ConvergeTimeout.
func (f *Fleet) WaitSides(ctx context.Context, since time.Time, sides ...[]*e2e.Agent) (time.Duration, error) {
	err := e2e.Poll(ctx, e2e.ConvergeTimeout, 100*time.Millisecond, func(ctx context.Context) error { return f.sidesSplit(ctx, sides) })
	if err != nil {
		return 0, fmt.Errorf("%s: the sides did not split: %w", f.Name, err)
	}
	return time.Since(since), nil
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

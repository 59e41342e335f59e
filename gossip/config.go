package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// PeerProvider returns the gossip addresses (ip:port) of members to join:
// it resolves names itself, so that every address can be compared with the
// members' own. It may return the caller's own address, which is skipped. It is called at
// start and on every rejoin, so it should be cheap or cached.
type PeerProvider func(ctx context.Context) ([]string, error)

// StaticPeers is a PeerProvider over a fixed list.
func StaticPeers(addrs ...string) PeerProvider {
	return func(context.Context) ([]string, error) { return addrs, nil }
}

// Config configures a Node. Start from DefaultConfig: New applies no
// defaults, and a zero timer or bootstrap timeout is refused.
type Config struct {
	// Name is the node's unique name in the cluster (default: hostname in
	// the caller). A second node with a name in use is refused.
	Name string
	// ClusterName isolates clusters sharing a network: it is memberlist's
	// label, and packets with another label are dropped.
	ClusterName string
	// BindAddr is the host:port to listen on for gossip (TCP and UDP). Port 0
	// picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port peers use to reach this node; empty
	// means derived from BindAddr (or the first private IP for 0.0.0.0).
	AdvertiseAddr string
	// AdvertiseInterface, when set, names the network interface whose
	// first IPv4 address is advertised with BindAddr's port
	// (ResolveAdvertise): for hosts whose default route is not the network
	// peers share, as a Docker Swarm task's docker_gwbridge.
	AdvertiseInterface string
	advertiseResolved  bool // AdvertiseAddr came from AdvertiseInterface
	// SecretKey, if set, encrypts gossip with AES (16, 24 or 32 bytes). Nodes
	// with another key cannot join.
	SecretKey []byte
	// SecretKeyFile, if set and SecretKey is not, is a keyring file: one key
	// per line, raw or base64-encoded, the first encrypting and all
	// accepted. New reads it and Node.ReloadKeys re-reads it.
	SecretKeyFile string
	// Insecure allows gossip without a key on an address other hosts can
	// reach. Without it, Validate refuses a non-loopback listen or advertise
	// address without a key: anyone reaching the port could join.
	Insecure bool
	// HTTPAddr is advertised in metadata so peers and operators can reach
	// this node's API.
	HTTPAddr string
	// Version is advertised in metadata.
	Version string
	// Weight is this node's ring weight, in (0, ring.MaxWeight].
	Weight float64
	// ReplicationFactor is how many members own each key, 1 to
	// MaxReplicationFactor.
	ReplicationFactor int
	// Peers supplies the addresses to join (--cluster.join). Nil means
	// start alone: the node is a cluster of one at once. With Peers, the
	// node owns nothing until a peer has accepted it (or, with Bootstrap,
	// until nobody answered for BootstrapTimeout), and retries for ever.
	Peers PeerProvider
	// Bootstrap lets a node with Peers start a new cluster alone once no
	// peer has answered for BootstrapTimeout: every address unreachable or
	// none listed. A peer that answers and refuses this node (another
	// cluster name or key, refused metadata, this node's name in use)
	// restarts that wait: a refusal is a configuration to fix, not an empty
	// cluster, and starting alone would scrape every target twice.
	Bootstrap bool
	// BootstrapTimeout is how long nobody must answer before a Bootstrap
	// node starts a new cluster.
	BootstrapTimeout time.Duration
	// WaitForSize, when above 1, keeps the node joining (owning nothing)
	// after it joined, until at least that many members, this one
	// included, are alive and not leaving, or WaitForSizeTimeout passes.
	// Only the start waits; later departures do not make it wait again.
	WaitForSize int
	// WaitForSizeTimeout bounds the wait for WaitForSize, from the start
	// of Run; zero waits for ever. After it the node goes on with the
	// members it has (it must still have joined, or bootstrapped).
	WaitForSizeTimeout time.Duration
	// RejoinInterval is how often to re-resolve Peers and join any address
	// not currently alive in the cluster, which merges healed partitions.
	// Zero disables rejoining.
	RejoinInterval time.Duration
	// Placement is PlacementLoad (the default, also when empty) to apply the
	// leader's load-aware plans, PlacementHash for rendezvous only.
	Placement string
	// HandoffLead is how far ahead a planned ownership change is announced:
	// a node that becomes active owns keys from HandoffLead after it joined,
	// and a leaving node announces the instant it stops owning HandoffLead
	// ahead. Every member switches each key at that instant, so the new
	// owner must have its scrape loop running by then: the lead covers
	// gossip propagation, the filter's rate limit and the scrape manager's
	// reload. Zero switches at once.
	HandoffLead time.Duration
	// Resume, when after the moment the node becomes active, says that the
	// peers hold this node's keys for it until then (it left with a restart
	// grace and has come back): it owns its keys at once instead of after
	// HandoffLead, because nobody else scrapes them.
	Resume time.Time
	// Timers are memberlist's failure-detection and gossip timers.
	Timers Timers
	// MaxClockOffset bounds how far this node's clock may be from the
	// cluster's (the median of its active peers' clocks, measured from
	// gossip probes): a node further off stays joining (owns nothing, is not
	// ready) until back in bound, and an active one reports it.
	MaxClockOffset ClockBound
	// Clock is the node's time source for every ownership decision; nil
	// means the system clock shifted by ClockOffset. Tests set it.
	Clock Clock
	// ClockOffset shifts the system clock (--debug.clock-offset, for tests
	// only): the node behaves as one on a host whose clock is that far off.
	ClockOffset time.Duration
}

// Timers are memberlist's timers, tuned by default for a LAN fleet of up to a
// few hundred agents. See memberlist.Config for their exact meaning.
type Timers struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	GossipNodes             int
	GossipToTheDeadTime     time.Duration
	PushPullInterval        time.Duration
	TCPTimeout              time.Duration
	DeadNodeReclaimTime     time.Duration
}

// DefaultTimers returns shoal's LAN timers. Compared with memberlist's
// DefaultLANConfig (probe 1 s, suspicion multiplier 4, up to 6x, i.e. 4-24 s
// of suspicion at 10 nodes, which is why Alloy takes 20 s or more to notice a
// dead agent), probes run every 400 ms and suspicion lasts 1.2 s at 10 nodes
// when other members confirm it, 4.8 s at most when nobody does. Lifeguard
// (memberlist's awareness and suspicion confirmations) stays on, so a node
// whose own CPU is starved probes more slowly instead of accusing others.
func DefaultTimers() Timers {
	return Timers{
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            300 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 4,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             4,
		// Keep gossiping to dead members for a while so that a short
		// partition heals without waiting for a rejoin.
		GossipToTheDeadTime: 30 * time.Second,
		PushPullInterval:    15 * time.Second,
		TCPTimeout:          2 * time.Second,
		// A restarted agent may come back with the same name on a new IP
		// (containers). Let it reclaim its name once the old one is dead.
		DeadNodeReclaimTime: time.Second,
	}
}

// Defaults.
const (
	// DefaultBootstrapTimeout: long enough for peers starting at the same
	// time (a rollout, a compose file) to answer, short enough for the first
	// agent of a new fleet.
	DefaultBootstrapTimeout = 10 * time.Second
	// DefaultRejoinInterval: after a partition heals, memberlist no longer
	// talks to the members it declared dead, and only the rejoin loop merges
	// the sides; one second keeps the merge under two. When every peer is
	// alive a rejoin only re-resolves the peer list.
	DefaultRejoinInterval = time.Second
	// DefaultHandoffLead: gossip reaches every member within about 0.5 s
	// (p99 at 10 nodes), the filter re-splits at most once a second and the
	// scrape manager applies targets at most a second later; 5 s leaves
	// room for a busy machine.
	DefaultHandoffLead = 5 * time.Second
	// MaxReplicationFactor bounds the replication factor: each replica
	// multiplies scrape load and series; HA backends deduplicate 2 or 3.
	MaxReplicationFactor = 5
	maxWeight            = ring.MaxWeight
)

// DefaultConfig returns the defaults of every setting but Name, BindAddr,
// HTTPAddr, Version and Peers, which the caller supplies.
func DefaultConfig() Config {
	return Config{
		ClusterName:       "shoal",
		BindAddr:          "0.0.0.0:7946",
		Weight:            1,
		ReplicationFactor: 1,
		BootstrapTimeout:  DefaultBootstrapTimeout,
		RejoinInterval:    DefaultRejoinInterval,
		HandoffLead:       DefaultHandoffLead,
		Placement:         PlacementLoad,
		Timers:            DefaultTimers(),
		MaxClockOffset:    DefaultClockBound(),
	}
}

// Validate checks c without opening anything (it reads SecretKeyFile).
// Messages name the flag that sets the field, quote the value and say what
// is allowed.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("--cluster.node-name must not be empty"))
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("--cluster.listen-address %q: %w", c.BindAddr, err))
	}
	if c.AdvertiseAddr != "" {
		if host, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("--cluster.advertise-address %q: %w", c.AdvertiseAddr, err))
		} else if net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("--cluster.advertise-address %q: host must be an IP address", c.AdvertiseAddr))
		}
	}
	if keys, err := c.keyring(); err != nil {
		errs = append(errs, err)
	} else if flag, addr, exposed := c.exposed(); len(keys) == 0 && exposed && !c.Insecure {
		errs = append(errs, fmt.Errorf("%s %q is reachable from other hosts and gossip has no key, so anyone who can reach it could join the cluster and take its targets: "+
			"create a key with `openssl rand -base64 32 > key`, give the same file to every agent with --cluster.secret-key-file, "+
			"or pass --cluster.insecure to gossip unauthenticated", flag, addr))
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > MaxReplicationFactor {
		errs = append(errs, fmt.Errorf("--cluster.replication-factor must be between 1 and %d, got %d", MaxReplicationFactor, c.ReplicationFactor))
	}
	if !(c.Weight > 0 && c.Weight <= maxWeight) {
		errs = append(errs, fmt.Errorf("--cluster.weight must be above 0 and at most %d, got %v", maxWeight, c.Weight))
	}
	if c.Placement != "" && c.Placement != PlacementLoad && c.Placement != PlacementHash {
		errs = append(errs, fmt.Errorf("--cluster.placement must be %s or %s, got %q", PlacementLoad, PlacementHash, c.Placement))
	}
	if c.HandoffLead < 0 {
		errs = append(errs, fmt.Errorf("--cluster.handoff-lead must not be negative, got %s", c.HandoffLead))
	}
	if c.RejoinInterval < 0 {
		errs = append(errs, fmt.Errorf("--cluster.rejoin-interval must not be negative (0 disables), got %s", c.RejoinInterval))
	}
	if c.BootstrapTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--cluster.bootstrap-timeout must be positive, got %s", c.BootstrapTimeout))
	}
	if c.WaitForSize < 0 {
		errs = append(errs, fmt.Errorf("--cluster.wait-for-size must not be negative (0 does not wait), got %d", c.WaitForSize))
	}
	if c.WaitForSizeTimeout < 0 {
		errs = append(errs, fmt.Errorf("--cluster.wait-for-size-timeout must not be negative (0 waits for ever), got %s", c.WaitForSizeTimeout))
	}
	errs = append(errs, c.Timers.validate()...)
	if err := c.MaxClockOffset.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Version) > 64 {
		errs = append(errs, fmt.Errorf("version must be at most 64 bytes, got %d", len(c.Version)))
	}
	if len(c.HTTPAddr) > 256 {
		errs = append(errs, fmt.Errorf("http address must be at most 256 bytes, got %d", len(c.HTTPAddr)))
	} else if c.HTTPAddr != "" {
		// Peers refuse a member whose address does not pass this check.
		if err := ValidateHTTPAddr(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertised http address %q: %w", c.HTTPAddr, err))
		}
	}
	return errors.Join(errs...)
}

// validate checks the timers; every one must be set (DefaultTimers).
func (t Timers) validate() []error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--cluster.probe-interval", t.ProbeInterval},
		{"--cluster.probe-timeout", t.ProbeTimeout},
		{"--cluster.gossip-interval", t.GossipInterval},
		{"--cluster.pushpull-interval", t.PushPullInterval},
		{"gossip to the dead time", t.GossipToTheDeadTime},
		{"tcp timeout", t.TCPTimeout},
		{"dead node reclaim time", t.DeadNodeReclaimTime},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.flag, d.v))
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		errs = append(errs, fmt.Errorf("--cluster.probe-timeout (%s) must be shorter than --cluster.probe-interval (%s)", t.ProbeTimeout, t.ProbeInterval))
	}
	if t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1 || t.GossipNodes < 1 {
		errs = append(errs, fmt.Errorf("suspicion multipliers and gossip nodes must be >= 1, got %d, %d, %d", t.SuspicionMult, t.SuspicionMaxTimeoutMult, t.GossipNodes))
	}
	return errs
}

func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port must be a number between 0 and 65535, got %q", portStr)
	}
	return host, port, nil
}

// ResolveAdvertise sets AdvertiseAddr from AdvertiseInterface: the
// interface's first IPv4 address and BindAddr's port. The errors name the
// flags.
func (c *Config) ResolveAdvertise() error {
	if c.AdvertiseInterface == "" || c.advertiseResolved {
		return nil
	}
	if c.AdvertiseAddr != "" {
		return fmt.Errorf("--cluster.advertise-interface %q and --cluster.advertise-address %q: give only one", c.AdvertiseInterface, c.AdvertiseAddr)
	}
	ifi, err := net.InterfaceByName(c.AdvertiseInterface)
	if err != nil {
		return fmt.Errorf("--cluster.advertise-interface %q: %w", c.AdvertiseInterface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return fmt.Errorf("--cluster.advertise-interface %q: %w", c.AdvertiseInterface, err)
	}
	_, port, err := splitHostPort(c.BindAddr)
	if err != nil {
		return fmt.Errorf("--cluster.listen-address %q: %w", c.BindAddr, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			c.AdvertiseAddr = net.JoinHostPort(ipn.IP.String(), strconv.Itoa(port))
			c.advertiseResolved = true
			return nil
		}
	}
	return fmt.Errorf("--cluster.advertise-interface %q has no IPv4 address", c.AdvertiseInterface)
}

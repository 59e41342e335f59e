package gossip

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/internal/flagext"
)

// RegisterFlags declares the --cluster.* flags that set c, with c's current
// values (DefaultConfig) as their defaults.
func (c *Config) RegisterFlags(app *kingpin.Application) {
	t := &c.Timers
	flagext.String(app, "cluster.name", "Cluster name: agents only gossip with agents of the same name.", &c.ClusterName)
	flagext.String(app, "cluster.node-name", "Unique name of this agent in the cluster. Keep it across restarts.", &c.Name)
	flagext.String(app, "cluster.listen-address", "Address to listen on for gossip (TCP and UDP).", &c.BindAddr)
	flagext.String(app, "cluster.advertise-address", "Address peers use to reach this agent's gossip port (IP:port); default derived from the listen address.", &c.AdvertiseAddr)
	flagext.String(app, "cluster.advertise-interface", "Network interface whose first IPv4 address is advertised for gossip and HTTP when --cluster.advertise-address is not set (e.g. eth0 in a Docker Swarm task, whose default route is on docker_gwbridge, which peers cannot reach).", &c.AdvertiseInterface)
	flagext.String(app, "cluster.secret-key-file", "File holding the gossip keyring: one 16, 24 or 32-byte key per line (raw or base64, e.g. `openssl rand -base64 32 > key`); the first encrypts, all are accepted, and SIGHUP or POST /-/reload re-reads it (rotation). Agents without a key it holds cannot join. Required when gossip listens on or advertises a non-loopback address, unless --cluster.insecure.", &c.SecretKeyFile)
	flagext.Bool(app, "cluster.insecure", "Allow gossip without --cluster.secret-key-file on a non-loopback address: anyone who can reach the gossip port can then join the cluster, take targets and make agents contact addresses it chooses. Logs a warning and shows on the status page.", &c.Insecure)
	flagext.Int(app, "cluster.replication-factor", fmt.Sprintf("How many agents scrape each target (1-%d). Use with a deduplicating backend.", MaxReplicationFactor), &c.ReplicationFactor)
	flagext.Bool(app, "cluster.bootstrap", "With --cluster.join: start a new cluster alone when no peer has answered for --cluster.bootstrap-timeout (every address unreachable, or none listed). A peer that answers but refuses this agent (another --cluster.name or key, refused metadata, its node name in use) never leads to a new cluster. Without it, an agent with --cluster.join owns nothing and is not ready until a peer accepts it. Give it to the first agent of a new fleet.", &c.Bootstrap)
	flagext.Duration(app, "cluster.bootstrap-timeout", "With --cluster.bootstrap: how long no peer must answer before this agent starts a new cluster.", &c.BootstrapTimeout)
	flagext.Int(app, "cluster.wait-for-size", "At start, own nothing and stay not ready until at least this many agents, this one included, are members (joining or active). 0 does not wait.", &c.WaitForSize)
	flagext.Duration(app, "cluster.wait-for-size-timeout", "How long to wait for --cluster.wait-for-size before going on with the members there are (the agent must still have joined or bootstrapped). 0 waits for ever.", &c.WaitForSizeTimeout)
	flagext.Duration(app, "cluster.rejoin-interval", "How often to re-resolve --cluster.join and join peers that are not members, which merges a healed partition. 0 disables.", &c.RejoinInterval)
	flagext.Float(app, "cluster.weight", fmt.Sprintf("Share of targets relative to other agents (e.g. 2 on an agent twice as large), above 0 and at most %d.", maxWeight), &c.Weight)
	flagext.Duration(app, "cluster.probe-interval", "Gossip failure-detection probe interval.", &t.ProbeInterval)
	flagext.Duration(app, "cluster.probe-timeout", "Gossip probe timeout (must be below the probe interval).", &t.ProbeTimeout)
	flagext.Duration(app, "cluster.gossip-interval", "Interval between gossip rounds.", &t.GossipInterval)
	flagext.Duration(app, "cluster.pushpull-interval", "Interval between full state syncs with a random peer.", &t.PushPullInterval)
	flagext.Flag(app, "cluster.max-clock-offset", "How far this agent's clock may be from its peers' (the median of the active agents' clocks, measured from gossip probes): a duration, or a percentage of the shortest scrape interval. An agent further off stays out of the ring (owns no targets, not ready) and says why; fix its NTP. Clocks off by d stamp samples d off and start or stop scraping d early or late in a handoff.").
		Default(c.MaxClockOffset.String()).SetValue(clockBoundValue{&c.MaxClockOffset})
	flagext.Flag(app, "debug.clock-offset", "For tests only: shift this agent's clock by this signed duration (e.g. -5s), for its ownership decisions and its samples' timestamps, as if its host's clock were off.").
		Hidden().Default(c.ClockOffset.String()).SetValue(signedDurationValue{"debug.clock-offset", &c.ClockOffset})
	flagext.String(app, "cluster.placement", "How targets are placed on agents: load (the default: the leader, the oldest agent, moves targets off agents above --cluster.placement-bound, 110 %, of their fair share of series, at announced instants; rendezvous hashing otherwise) or hash (rendezvous hashing only, balancing target counts: turns load-aware placement off). Keep it the same on every agent.", &c.Placement)
	flagext.Duration(app, "cluster.handoff-lead", "How far ahead ownership changes (an agent joining or leaving) are announced; every agent switches each target at that instant, so the new owner must be scraping by then. Must exceed gossip propagation plus a second or two. 0 switches when the news arrives. Keep it the same on every agent: peers refuse an instant announced more than their own lead plus "+ClaimSlack.String()+" ahead.", &c.HandoffLead)
}

// decodeKey accepts the gossip encryption key as base64 (as `openssl rand
// -base64 32` prints it, and as memberlist tools use) or as raw bytes.
func decodeKey(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		switch len(b) {
		case 16, 24, 32:
			return b, nil
		}
	}
	switch len(s) {
	case 16, 24, 32:
		return []byte(s), nil
	}
	return nil, fmt.Errorf("key must be 16, 24 or 32 bytes, raw or base64-encoded (e.g. `openssl rand -base64 32`), got %d characters", len(s))
}

type clockBoundValue struct{ p *ClockBound }

func (v clockBoundValue) Set(s string) error {
	b, err := ParseClockBound(s)
	if err != nil {
		return err
	}
	*v.p = b
	return nil
}
func (v clockBoundValue) String() string { return v.p.String() }

type signedDurationValue struct {
	name string
	p    *time.Duration
}

func (v signedDurationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("--%s must be a duration such as -5s or 1m, got %q", v.name, s)
	}
	*v.p = d
	return nil
}
func (v signedDurationValue) String() string { return v.p.String() }

package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/sd"
)

// envName is a flag's environment twin: --cluster.node-name is
// SHOAL_CLUSTER_NODE_NAME.
func envName(flag string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "SHOAL_" + strings.ToUpper(r.Replace(flag))
}

// flag declares a flag with its SHOAL_* environment twin.
func flag(app *kingpin.Application, name, help string) *kingpin.FlagClause {
	return app.Flag(name, help).Envar(envName(name))
}

// newFlags declares every flag of the agent, in Prometheus' naming style.
func newFlags(app *kingpin.Application, o *agent.Options, hostname string) *logFlags {
	t := gossip.DefaultTimers()
	l := &logFlags{}

	flag(app, "config.file", "Prometheus configuration file (scrape_configs, remote_write, global).").
		Default("shoal.yml").StringVar(&o.ConfigFile)
	flag(app, "storage.path", "Directory of the write-ahead log that buffers samples for remote write.").
		Default("data/").StringVar(&o.StoragePath)
	flag(app, "web.listen-address", "Address to listen on for the API, the status page and /metrics.").
		Default("0.0.0.0:9090").StringVar(&o.ListenAddress)
	flag(app, "web.config.file", "[EXPERIMENTAL] Path to a web configuration file enabling TLS or basic authentication (Prometheus exporter-toolkit format).").
		Default("").StringVar(&o.WebConfigFile)
	flag(app, "web.enable-lifecycle", "Enable shutdown and reload via HTTP request (POST /-/quit, /-/reload).").
		Default("false").BoolVar(&o.EnableLifecycle)

	flag(app, "cluster.name", "Cluster name: agents only gossip with agents of the same name.").
		Default("shoal").StringVar(&o.ClusterName)
	flag(app, "cluster.node-name", "Unique name of this agent in the cluster. Keep it across restarts.").
		Default(hostname).StringVar(&o.NodeName)
	flag(app, "cluster.listen-address", "Address to listen on for gossip (TCP and UDP).").
		Default("0.0.0.0:7946").StringVar(&o.ClusterListen)
	flag(app, "cluster.advertise-address", "Address peers use to reach this agent's gossip port (IP:port); default derived from the listen address.").
		Default("").StringVar(&o.ClusterAdvertise)
	flag(app, "cluster.join", "Peer to join, repeatable: host:port, dns+name:port (A records), dns+name (SRV records) or consul+service (agents registered in Consul). Comma-separated in the environment variable.").
		StringsVar(&o.Join)
	flag(app, "cluster.secret-key-file", "File holding a 16, 24 or 32-byte key (raw or base64) that encrypts gossip; agents with another key cannot join.").
		Default("").StringVar(&o.SecretKeyFile)
	intFlag(app, "cluster.replication-factor", fmt.Sprintf("How many agents scrape each target (1-%d). Use with a deduplicating backend.", gossip.MaxReplicationFactor), "1", &o.ReplicationFactor)
	flag(app, "cluster.replica-label", "With a replication factor above 1: label set to the agent's name on every target, for HA-deduplicating backends (e.g. replica; names starting with __ are dropped by Prometheus). Empty: none.").
		Default("").StringVar(&o.ReplicaLabel)
	durationFlag(app, "cluster.rejoin-interval", "How often to re-resolve --cluster.join and join peers that are not members, which merges a healed partition. 0 disables.", gossip.DefaultRejoinInterval, &o.RejoinInterval)
	floatFlag(app, "cluster.weight", "Share of targets relative to other agents (e.g. 2 on an agent twice as large). 0 means 1.", "0", &o.Weight)
	durationFlag(app, "cluster.probe-interval", "Gossip failure-detection probe interval.", t.ProbeInterval, &o.Timers.ProbeInterval)
	durationFlag(app, "cluster.probe-timeout", "Gossip probe timeout (must be below the probe interval).", t.ProbeTimeout, &o.Timers.ProbeTimeout)
	durationFlag(app, "cluster.gossip-interval", "Interval between gossip rounds.", t.GossipInterval, &o.Timers.GossipInterval)
	durationFlag(app, "cluster.pushpull-interval", "Interval between full state syncs with a random peer.", t.PushPullInterval, &o.Timers.PushPullInterval)
	durationFlag(app, "cluster.handoff-timeout", "On shutdown, how long to wait for peers to acknowledge the leave before going on with the handoff.", agent.DefaultHandoffTimeout, &o.HandoffTimeout)
	durationFlag(app, "cluster.handoff-lead", "How far ahead ownership changes (an agent joining or leaving) are announced; every agent switches each target at that instant, so the new owner must be scraping by then. Must exceed gossip propagation plus a second or two.", gossip.DefaultHandoffLead, &o.HandoffLead)
	durationFlag(app, "cluster.restart-grace", "On shutdown, keep this agent's targets assigned to it for this long instead of handing them over, expecting it back under the same node name and storage path (rolling restarts): nothing moves, and its targets are not scraped while it is down. If it is not back in time, peers take them over. 0 hands targets over on every shutdown (scale-in).", 0, &o.RestartGrace)
	durationFlag(app, "storage.remote.flush-deadline", "How long to wait flushing samples to remote write on shutdown.", agent.DefaultFlushDeadline, &o.FlushDeadline)

	flag(app, "consul.address", "Consul HTTP address (host:port) for --cluster.join=consul+... and --consul.register. Empty: no Consul. Scrape targets use consul_sd_configs in the config file.").
		Default("").StringVar(&o.ConsulAddress)
	flag(app, "consul.token-file", "File with the Consul ACL token.").
		Default("").StringVar(&o.ConsulTokenFile)
	flag(app, "consul.register", "Register this agent in Consul under this service name (with a TTL check that follows readiness). Empty: do not register.").
		Default("").StringVar(&o.ConsulRegister)
	flag(app, "consul.tags", "Tags of the Consul registration, repeatable.").
		StringsVar(&o.ConsulTags)
	durationFlag(app, "consul.check-ttl", "TTL of the registration's health check; it is renewed every third of it while the agent runs.", sd.DefaultTTL, &o.ConsulCheckTTL)
	durationFlag(app, "consul.deregister-critical-after", "How long the registration's check may stay critical (the agent died without deregistering) before Consul removes it. Consul enforces at least 1m.", sd.DefaultDeregisterCriticalServiceAfter, &o.ConsulDeregisterAfter)

	flag(app, "log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").
		Default("info").StringVar(&l.level)
	flag(app, "log.format", "Output format of log messages. One of: [logfmt, json]").
		Default("logfmt").StringVar(&l.format)
	return l
}

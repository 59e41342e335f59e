package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/consul/api"
)

// readyRequestTimeout bounds each readiness request.
const readyRequestTimeout = 5 * time.Second

// consulNodeName is the node name of every test agent; each runs its own
// single-node datacenter, so the names never meet.
const consulNodeName = "shoal-testenv"

// Consul is a single-node Consul agent in dev mode (server, in-memory Raft)
// on loopback ports. Services registered through its agent API are persisted
// in its data directory, so they survive Stop and Start; the rest of the
// catalog does not.
type Consul struct {
	// Addr is the host:port of the HTTP API.
	Addr string
	// DNSAddr is the host:port of the DNS interface (UDP and TCP).
	DNSAddr string
	// DataDir is the agent's data directory, kept across Stop and Start.
	DataDir string
	// LogPath is the file the agent logs to.
	LogPath string
	// Ports are every port the agent listens on (HTTP, DNS, Serf LAN and
	// WAN, server RPC, gRPC).
	Ports []int

	client *api.Client
	proc   *Process
	node   string
	token  string
	args   []string
}

// ConsulOptions configures StartConsul; the zero value picks free ports.
type ConsulOptions struct {
	// Ports, when not nil, are the HTTP, DNS, Serf LAN, Serf WAN, server and
	// gRPC ports, in this order.
	Ports []int
	// NodeName is the agent's node name; "shoal-testenv" if empty.
	NodeName string
	// UI serves Consul's web UI on the HTTP port.
	UI bool
	// ACLToken, when set, enables ACLs with a default policy of deny and
	// makes this the management token, which Client uses. Requests without
	// a token, or with an unknown one, get 403.
	ACLToken string
}

// RunConsul starts `consul agent -dev` on loopback ports and waits until
// its HTTP API answers, a leader is elected and the agent's node is in the
// catalog. Closing g stops it.
func RunConsul(ctx context.Context, g *Group, opts ConsulOptions) (*Consul, error) {
	bin, dir, err := g.prepare(ConsulBinary, "consul")
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create consul data dir: %w", err)
	}
	p := opts.Ports
	if p == nil {
		if p, err = FreePorts(6); err != nil {
			return nil, err
		}
	}
	if len(p) != 6 {
		return nil, fmt.Errorf("consul needs 6 ports, got %d", len(p))
	}
	if opts.NodeName == "" {
		opts.NodeName = consulNodeName
	}
	httpPort, dnsPort, serfLAN, serfWAN, serverPort, grpcPort := p[0], p[1], p[2], p[3], p[4], p[5]
	// Every port is set so that parallel agents never fall back to a default
	// and collide. HTTPS and gRPC-TLS stay off.
	ports := fmt.Sprintf(`ports {
  http = %d
  dns = %d
  serf_lan = %d
  serf_wan = %d
  server = %d
  grpc = %d
  grpc_tls = -1
  https = -1
}`, httpPort, dnsPort, serfLAN, serfWAN, serverPort, grpcPort)

	hcl := ports
	if opts.ACLToken != "" {
		hcl += fmt.Sprintf(`
acl {
  enabled = true
  default_policy = "deny"
  tokens { initial_management = %q }
}`, opts.ACLToken)
	}

	c := &Consul{
		Addr:    Loopback(httpPort),
		DNSAddr: Loopback(dnsPort),
		DataDir: dataDir,
		LogPath: filepath.Join(dir, "consul.log"),
		Ports:   p,
		node:    opts.NodeName,
		token:   opts.ACLToken,
		args: []string{
			"agent", "-dev",
			"-node=" + opts.NodeName,
			"-bind=127.0.0.1",
			"-client=127.0.0.1",
			"-advertise=127.0.0.1",
			"-data-dir=" + dataDir,
			"-log-level=info",
			"-hcl=" + hcl,
		},
	}
	if opts.UI {
		c.args = append(c.args, "-ui")
	}
	cl, err := c.newClient()
	if err != nil {
		return nil, err
	}
	c.client = cl.Client
	g.OnClose(func() error { cl.closeIdle(); return nil })
	c.proc = g.NewProcess("consul", bin, c.LogPath)
	g.OnClose(c.Stop)
	return c, c.start(ctx)
}

// Start starts the agent again after Stop, on the same ports and data
// directory, and waits until it is ready as RunConsul does.
func (c *Consul) Start() error { return c.start(context.Background()) }

func (c *Consul) start(ctx context.Context) error {
	if err := c.proc.Start(c.args); err != nil {
		return err
	}
	client, err := c.newClient()
	if err != nil {
		return err
	}
	defer client.closeIdle()
	// An agent that accepts connections but never answers must not hang the test.
	client.transport.ResponseHeaderTimeout = readyRequestTimeout
	return c.proc.WaitReady(ctx, startTimeout, pollInterval, func(context.Context) error {
		leader, err := client.Status().Leader()
		if err != nil {
			return fmt.Errorf("query leader: %w", err)
		}
		if leader == "" {
			return errors.New("no leader elected yet")
		}
		node, _, err := client.Catalog().Node(c.node, nil)
		if err != nil {
			return fmt.Errorf("query catalog node: %w", err)
		}
		if node == nil {
			return errors.New("agent node not in the catalog yet")
		}
		return nil
	})
}

// Stop stops the agent (SIGTERM, then SIGKILL after a grace period) to
// simulate Consul being down. The ports stay known for Start, although
// nothing stops another process from taking them meanwhile. Stopping a
// stopped agent does nothing.
func (c *Consul) Stop() error {
	if err := c.proc.StopGracefully(); err != nil {
		return fmt.Errorf("stop consul: %w", err)
	}
	return nil
}

// Client returns a Consul API client for the agent. Its idle connections are
// closed when the group closes, so it leaks no goroutines into goleak's view.
func (c *Consul) Client() *api.Client { return c.client }

// consulClient is an API client together with its transport, which the api
// package does not hand back.
type consulClient struct {
	*api.Client
	transport *http.Transport
}

func (c *consulClient) closeIdle() { c.transport.CloseIdleConnections() }

func (c *Consul) newClient() (*consulClient, error) {
	cfg := api.DefaultConfig()
	cfg.Address = c.Addr
	cfg.Scheme = "http"
	cfg.Token = c.token
	// api.DefaultConfig allocates a fresh transport per call; keep it so its
	// keep-alive connections can be closed.
	tr := cfg.Transport
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("create consul client: %w", err)
	}
	return &consulClient{Client: cl, transport: tr}, nil
}

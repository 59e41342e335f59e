package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
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
	// LogPath is the file the agent logs to; it is printed when the test fails.
	LogPath string

	tb   testing.TB
	proc *process
}

// StartConsul starts `consul agent -dev` on free loopback ports and waits
// until its HTTP API answers, a leader is elected and the agent's node is in
// the catalog. t.Cleanup stops it. It skips the test under -short or when the
// binary is missing; see the package documentation.
func StartConsul(tb testing.TB) *Consul {
	tb.Helper()
	bin := findBinary(tb, "consul", EnvConsulBin)

	dir := tb.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		tb.Fatalf("testenv: create consul data dir: %v", err)
	}
	p := freePorts(tb, 6)
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

	c := &Consul{
		Addr:    loopback(httpPort),
		DNSAddr: loopback(dnsPort),
		DataDir: dataDir,
		LogPath: filepath.Join(dir, "consul.log"),
		tb:      tb,
	}
	c.proc = newProcess(tb, "consul", bin, c.LogPath,
		"agent", "-dev",
		"-node="+consulNodeName,
		"-bind=127.0.0.1",
		"-client=127.0.0.1",
		"-advertise=127.0.0.1",
		"-data-dir="+dataDir,
		"-log-level=info",
		"-hcl="+ports,
	)
	c.Start()
	return c
}

// Start starts the agent again after Stop, on the same ports and data
// directory, and waits until it is ready as StartConsul does. Call it from
// the test goroutine.
func (c *Consul) Start() {
	c.tb.Helper()
	if err := c.proc.start(); err != nil {
		c.tb.Fatalf("testenv: %v", err)
	}
	client := c.newClient()
	defer client.closeIdle()
	// An agent that accepts connections but never answers must not hang the test.
	client.transport.ResponseHeaderTimeout = readyRequestTimeout
	c.proc.waitReady(c.tb, startTimeout, func() error {
		leader, err := client.Status().Leader()
		if err != nil {
			return fmt.Errorf("query leader: %w", err)
		}
		if leader == "" {
			return errors.New("no leader elected yet")
		}
		node, _, err := client.Catalog().Node(consulNodeName, nil)
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
// simulate Consul being down. The ports stay reserved for Start, although
// nothing stops another process from taking them meanwhile. Stopping a
// stopped agent does nothing.
func (c *Consul) Stop() {
	c.tb.Helper()
	if err := c.proc.stop(); err != nil {
		c.tb.Fatalf("testenv: stop consul: %v", err)
	}
}

// Client returns a Consul API client for the agent. Its idle connections are
// closed by t.Cleanup, so it leaks no goroutines into goleak's view.
func (c *Consul) Client() *api.Client {
	c.tb.Helper()
	cl := c.newClient()
	c.tb.Cleanup(cl.closeIdle)
	return cl.Client
}

// consulClient is an API client together with its transport, which the api
// package does not hand back.
type consulClient struct {
	*api.Client
	transport *http.Transport
}

func (c *consulClient) closeIdle() { c.transport.CloseIdleConnections() }

func (c *Consul) newClient() *consulClient {
	c.tb.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = c.Addr
	cfg.Scheme = "http"
	// api.DefaultConfig allocates a fresh transport per call; keep it so its
	// keep-alive connections can be closed.
	tr := cfg.Transport
	cl, err := api.NewClient(cfg)
	if err != nil {
		c.tb.Fatalf("testenv: create consul client: %v", err)
	}
	return &consulClient{Client: cl, transport: tr}
}

package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// txnMaxOps is how many operations Consul accepts in one transaction.
const txnMaxOps = 64

// metaTarget is the service meta key the scrape config copies into the
// target label (as internal/farm registers it).
const metaTarget = "target"

// Instance is one service instance to register.
type Instance struct {
	// ID is the service instance ID, unique within its node.
	ID string
	// Addr is the host:port to scrape.
	Addr string
}

// RegisterInstances puts instances of service on a catalog node of their
// own, in transactions of txnMaxOps, without health checks (so Prometheus'
// Consul SD sees them passing, and Consul runs no checks that would cost CPU
// during a run). The node is a plain catalog node, not the Consul agent's,
// so the agent's anti-entropy leaves it alone; DeregisterNode removes it
// with everything on it.
func RegisterInstances(ctx context.Context, cc *api.Client, node, service string, instances []Instance) error {
	ops := api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: "127.0.0.1"}}}}
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		ok, resp, _, err := cc.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("register %d instances of %s in consul: %w", len(ops), service, err)
		}
		if !ok {
			return fmt.Errorf("register %d instances of %s in consul: transaction rolled back: %s", len(ops), service, txnErrors(resp))
		}
		ops = ops[:0]
		return nil
	}
	for _, in := range instances {
		host, p, err := net.SplitHostPort(in.Addr)
		if err != nil {
			return fmt.Errorf("instance %s address %q: %w", in.ID, in.Addr, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("instance %s port %q: %w", in.ID, p, err)
		}
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{
			Verb: api.ServiceSet,
			Node: node,
			Service: api.AgentService{
				ID: in.ID, Service: service, Address: host, Port: port,
				Meta: map[string]string{metaTarget: in.ID},
			},
		}})
		if len(ops) == txnMaxOps {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// DeregisterInstance removes one instance of service from node.
func DeregisterInstance(ctx context.Context, cc *api.Client, node, service, id string) error {
	ops := api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: node, Service: api.AgentService{ID: id, Service: service}}}}
	ok, resp, _, err := cc.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("deregister %s from consul: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("deregister %s from consul: transaction rolled back: %s", id, txnErrors(resp))
	}
	return nil
}

func txnErrors(resp *api.TxnResponse) string {
	if resp == nil {
		return "no response"
	}
	var out []string
	for _, e := range resp.Errors {
		out = append(out, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
	}
	return strings.Join(out, "; ")
}

// DeregisterNode removes a catalog node and every instance on it.
func DeregisterNode(ctx context.Context, cc *api.Client, node string) error {
	_, err := cc.Catalog().Deregister(&api.CatalogDeregistration{Node: node}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("deregister node %s from consul: %w", node, err)
	}
	return nil
}

// deadInstances returns n instances at distinct loopback addresses where
// nothing listens (port 9, discard, in 127.1.0.0/16), so a scrape fails at
// once with "connection refused". The addresses must be distinct: a
// target's key is its job and URL.
func deadInstances(prefix string, n int) []Instance {
	out := make([]Instance, n)
	for i := range out {
		ip := net.IPv4(127, byte(1+i/(250*250)), byte(i/250%250), byte(1+i%250))
		out[i] = Instance{ID: prefix + "-" + strconv.Itoa(i), Addr: net.JoinHostPort(ip.String(), "9")}
	}
	return out
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// joinSpec is one --cluster.join value.
type joinSpec struct {
	kind string // "static", "dns", "dnssrv", "consul"
	host string // host name, DNS name or Consul service
	port int    // 0 for SRV and Consul
}

// Join prefixes accepted by --cluster.join.
const (
	prefixDNS    = "dns+"
	prefixConsul = "consul+"
)

// parseJoin parses a --cluster.join value:
//
//	host:port         a peer's gossip address (names resolved on every join)
//	dns+name:port     every A/AAAA record of name, e.g. a compose service
//	dns+name          every SRV record of name (_shoal._tcp.example.org)
//	consul+service    the passing instances of a Consul service (the agents'
//	                  own registration, see --consul.register)
func parseJoin(s string) (joinSpec, error) {
	orig := s
	switch {
	case strings.HasPrefix(s, prefixConsul):
		name := strings.TrimPrefix(s, prefixConsul)
		if name == "" || strings.ContainsAny(name, ":/ ") {
			return joinSpec{}, fmt.Errorf("--cluster.join %q: consul+ must be followed by a Consul service name, e.g. consul+shoal", orig)
		}
		return joinSpec{kind: "consul", host: name}, nil
	case strings.HasPrefix(s, prefixDNS):
		s = strings.TrimPrefix(s, prefixDNS)
		if !strings.Contains(s, ":") {
			if s == "" {
				return joinSpec{}, fmt.Errorf("--cluster.join %q: dns+ must be followed by name:port (A records) or an SRV name", orig)
			}
			return joinSpec{kind: "dnssrv", host: s}, nil
		}
		host, port, err := splitJoinHostPort(s)
		if err != nil {
			return joinSpec{}, fmt.Errorf("--cluster.join %q: %w", orig, err)
		}
		return joinSpec{kind: "dns", host: host, port: port}, nil
	default:
		host, port, err := splitJoinHostPort(s)
		if err != nil {
			return joinSpec{}, fmt.Errorf("--cluster.join %q: %w (allowed: host:port, dns+name:port, dns+srv-name, consul+service)", orig, err)
		}
		return joinSpec{kind: "static", host: host, port: port}, nil
	}
}

func splitJoinHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port must be between 1 and 65535, got %q", p)
	}
	if host == "" {
		return "", 0, errors.New("host must not be empty")
	}
	return host, port, nil
}

// resolver is the part of net.Resolver the join provider uses.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// consulPeers lists the gossip addresses of a Consul service's passing
// instances.
type consulPeers func(ctx context.Context, service string) ([]string, error)

// lookupTimeout bounds each DNS or Consul lookup of a join attempt.
const lookupTimeout = 5 * time.Second

// peerProvider returns a gossip.PeerProvider-compatible function over specs.
// Every call resolves again, so DNS and Consul changes are followed. A spec
// that fails does not hide the others: the addresses found are returned with
// the joined errors.
func peerProvider(specs []joinSpec, res resolver, consul consulPeers) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		var out []string
		var errs []error
		for _, s := range specs {
			lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			addrs, err := s.resolve(lctx, res, consul)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, addrs...)
		}
		slices.Sort(out)
		out = slices.Compact(out)
		if len(out) > 0 {
			// Partial results are enough to join.
			return out, nil
		}
		return nil, errors.Join(errs...)
	}
}

func (s joinSpec) resolve(ctx context.Context, res resolver, consul consulPeers) ([]string, error) {
	switch s.kind {
	case "static", "dns":
		return lookup(ctx, res, s.host, s.port)
	case "dnssrv":
		_, srvs, err := res.LookupSRV(ctx, "", "", s.host)
		if err != nil {
			return nil, fmt.Errorf("resolve SRV dns+%s: %w", s.host, err)
		}
		var out []string
		var errs []error
		for _, srv := range srvs {
			addrs, err := lookup(ctx, res, strings.TrimSuffix(srv.Target, "."), int(srv.Port))
			errs = append(errs, err)
			out = append(out, addrs...)
		}
		if len(out) == 0 {
			return nil, errors.Join(errs...)
		}
		return out, nil
	case "consul":
		if consul == nil {
			return nil, fmt.Errorf("--cluster.join consul+%s needs --consul.address", s.host)
		}
		addrs, err := consul(ctx, s.host)
		if err != nil {
			return nil, fmt.Errorf("list consul service %q: %w", s.host, err)
		}
		return addrs, nil
	}
	return nil, fmt.Errorf("unknown join kind %q", s.kind)
}

// lookup resolves host to ip:port addresses; gossip compares members by IP.
func lookup(ctx context.Context, res resolver, host string, port int) ([]string, error) {
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, strconv.Itoa(port))}, nil
	}
	ips, err := res.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, strconv.Itoa(port)))
	}
	return out, nil
}

package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// MetaGossipAddr is the service Meta key under which an agent registers the
// host:port of its gossip listener.
const MetaGossipAddr = "gossip_addr"

const (
	// defaultWaitTime bounds one blocking query. Consul's own default is 5m;
	// a shorter one notices a silently dead connection sooner.
	defaultWaitTime = time.Minute
	// minQueryInterval spaces queries, as Consul's blocking-query guide asks,
	// so an index that keeps changing (or resetting) cannot spin the loop.
	minQueryInterval = 100 * time.Millisecond
	// Backoff after a failed query, doubling up to the maximum.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// PeerProvider finds the gossip addresses of the agents registered in Consul
// under one service name, so a starting agent can join them.
type PeerProvider struct {
	client  *api.Client
	service string
	logger  *slog.Logger

	// Set by tests.
	waitTime         time.Duration
	minQueryInterval time.Duration
	minBackoff       time.Duration
}

// NewPeerProvider returns a provider that lists the live (passing or warning) instances of
// service. It starts nothing.
func NewPeerProvider(client *api.Client, service string, logger *slog.Logger) (*PeerProvider, error) {
	if client == nil {
		return nil, errors.New("consul client is required")
	}
	if service == "" {
		return nil, errors.New("consul service name is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PeerProvider{
		client:           client,
		service:          service,
		logger:           logger.With("component", "consul_peers", "service", service),
		waitTime:         defaultWaitTime,
		minQueryInterval: minQueryInterval,
		minBackoff:       minBackoff,
	}, nil
}

// Peers returns the sorted gossip addresses of the service's live (passing
// or warning) instances, this agent's own included when it is registered. An
// error means Consul could not be asked; an empty list is not an error.
func (p *PeerProvider) Peers(ctx context.Context) ([]string, error) {
	peers, _, err := p.query(ctx, 0)
	return peers, err
}

// Watch calls onChange with the peer list once it is first known and then on
// every change, until ctx is cancelled; then it returns. It uses Consul
// blocking queries, so a newly registered agent is seen at once. Failures are
// logged and retried with backoff. onChange runs on Watch's goroutine; a slow
// onChange delays the next query but loses no change.
func (p *PeerProvider) Watch(ctx context.Context, onChange func([]string)) {
	var (
		index     uint64
		last      []string
		known     bool
		backoff   = p.minBackoff
		lastQuery time.Time
	)
	for {
		if wait := p.minQueryInterval - time.Since(lastQuery); wait > 0 {
			if !sleep(ctx, wait) {
				return
			}
		}
		lastQuery = time.Now()
		peers, next, err := p.query(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.logger.Warn("list peers in consul failed, will retry", "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			// The failure may be a Consul restart with fresh, lower indexes
			// (-dev mode). A blocking query at the old index would then hang
			// until the new one overtakes it, so start over without blocking.
			index = 0
			continue
		}
		backoff = p.minBackoff
		index = nextIndex(index, next)
		if !known || !slices.Equal(peers, last) {
			known, last = true, peers
			onChange(slices.Clone(peers))
		}
	}
}

// nextIndex applies Consul's rules for blocking-query indexes: an index that
// goes backwards (a Consul restart, a snapshot restore) restarts from 0,
// which makes the next query return at once with the current state.
func nextIndex(prev, got uint64) uint64 {
	if got < prev {
		return 0
	}
	return got
}

// query lists the passing and warning instances (warning: alive but not ready
// yet, e.g. joining; an agent whose TTL expired is critical and left out), blocking while the result is at index
// when index is not zero. It returns their gossip addresses and the result's
// index.
func (p *PeerProvider) query(ctx context.Context, index uint64) ([]string, uint64, error) {
	q := &api.QueryOptions{WaitIndex: index}
	if index > 0 {
		q.WaitTime = p.waitTime
	}
	entries, meta, err := p.client.Health().Service(p.service, "", false, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("query instances of %q: %w", p.service, err)
	}
	peers := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Checks.AggregatedStatus() == api.HealthCritical {
			continue
		}
		if addr := gossipAddr(e); addr != "" {
			peers = append(peers, addr)
		}
	}
	slices.Sort(peers)
	return slices.Compact(peers), meta.LastIndex, nil
}

// gossipAddr is the instance's Meta gossip_addr or, without one, its service
// address and port; the service address defaults to the node's, as in Consul.
func gossipAddr(e *api.ServiceEntry) string {
	if e.Service == nil {
		return ""
	}
	if a := e.Service.Meta[MetaGossipAddr]; a != "" {
		return a
	}
	host := e.Service.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	if host == "" || e.Service.Port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

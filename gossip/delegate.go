package gossip

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. Every method returns at once:
// it copies what it needs, signals the node's event loop with a non-blocking
// send and returns, because memberlist calls these with its locks held.
type delegate struct {
	n *Node
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.MergeDelegate    = (*delegate)(nil)
	_ memberlist.PingDelegate     = (*delegate)(nil)
)

// AckPayload carries this node's clock reading in its answers to probes,
// from which the prober estimates the offset between their clocks.
func (d *delegate) AckPayload() []byte { return encodeClock(d.n.now()) }

// NotifyPingComplete records a probe's round trip and the peer's clock
// reading. memberlist calls it for direct UDP probes only, which are the
// ones whose round trip is meaningful.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	remote, ok := decodeClock(payload)
	if !ok || other == nil || other.Name == d.n.cfg.Name {
		return
	}
	d.n.clocks.observe(other.Name, remote, d.n.now(), rtt)
	d.n.pokeClock()
}

// NodeMeta returns this node's encoded metadata.
func (d *delegate) NodeMeta(limit int) []byte {
	b, err := encodeMeta(d.n.localMeta())
	if err != nil || len(b) > limit {
		// validate() bounds the variable fields, so this is unreachable; an
		// empty meta makes peers treat us as owning nothing, which is safe.
		d.n.logger.Error("node metadata does not fit, advertising none", "err", err, "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg receives user messages: the refusal notices of peers that
// refused this node (see notice) and the identity exchange (see
// identities).
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 2 {
		return
	}
	switch b[0] {
	case noticeTag:
		d.n.receiveNotice(b[1:])
	case whoTag:
		d.n.receiveWho(b[1:])
	case iamTag:
		d.n.receiveAnswer(b[1:])
	}
}

// NotifyMerge sees every member list a push/pull brings, before memberlist
// merges it: one that lists this node alive at its own address comes from a
// peer that accepted it. It refuses nothing.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	if d.n.accepted.Load() {
		return nil
	}
	self := d.n.advertised()
	for _, p := range peers {
		if p.Name == d.n.cfg.Name && p.State == memberlist.StateAlive &&
			net.JoinHostPort(p.Addr.String(), strconv.Itoa(int(p.Port))) == self {
			d.n.accepted.Store(true)
		}
	}
	return nil
}

// GetBroadcasts, LocalState and MergeRemoteState are unused: everything
// shoal shares travels in node metadata, and the ring itself is never
// gossiped but computed by each node from the member list.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// NotifyJoin is called when a member is seen alive for the first time (or
// again after being dead).
func (d *delegate) NotifyJoin(node *memberlist.Node) {
	if node.Name != d.n.cfg.Name {
		d.n.metrics.joins.Inc()
	}
	d.n.track(node)
}

// NotifyLeave is called when a member left or was declared dead. memberlist
// does not say which (the State of the node it passes is never updated), so a
// member counts as leaving gracefully if it announced StateLeaving first, as
// every shoal agent does on shutdown.
func (d *delegate) NotifyLeave(node *memberlist.Node) {
	if d.n.untrack(node) == StateLeaving {
		d.n.metrics.leaves.Inc()
	} else {
		d.n.metrics.failures.Inc()
	}
}

// NotifyUpdate is called when a member's metadata changes.
func (d *delegate) NotifyUpdate(node *memberlist.Node) { d.n.track(node) }

// NotifyAlive rejects members whose metadata is not a shoal agent's or
// claims what no shoal agent would (see decodeMeta): memberlist then ignores
// the alive message, so the member stays out of the member list and the
// ring, and an update with forged metadata leaves the last good one in
// place. A foreign memberlist cluster reachable on the same port cannot take
// targets either; the cluster label already keeps out clusters with another
// name. The conflict path checks messages that claim this node's name.
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	if peer.Name == d.n.cfg.Name {
		return nil
	}
	addr := net.JoinHostPort(peer.Addr.String(), strconv.Itoa(int(peer.Port)))
	if holder := d.n.addressTaken(peer.Name, addr); holder != "" {
		// No notice: it would go to the member that holds the address.
		d.n.refuseAddressClaim(peer.Name, addr, holder)
		return errAddressTaken
	}
	_, err := d.n.peerMeta(peer.Name, peer.Meta)
	if err != nil {
		d.n.queueNotice(peer.Name, addr, err)
	}
	return err
}

// errAddressTaken refuses a newcomer at a live member's gossip address.
var errAddressTaken = errors.New("another live member has this gossip address")

// NotifyConflict is called when two members claim the same name. If one of
// them is this node, it stands down only while it is still joining (see
// mustYield): a running agent never leaves on a newcomer's word.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.n.metrics.conflicts.Inc()
	otherAddr := net.JoinHostPort(other.Addr.String(), strconv.Itoa(int(other.Port)))
	if existing.Name != d.n.cfg.Name {
		d.n.logger.Error("two members claim the same node name; keeping the one already known",
			"name", existing.Name, "addr", existing.Address(), "other_addr", otherAddr)
		return
	}
	otherMeta, err := d.n.peerMeta(other.Name, other.Meta)
	if err == nil && mustYield(d.n.State(), d.n.started, otherMeta, d.n.advertised(), otherAddr) {
		select {
		case d.n.conflict <- otherAddr:
		default:
		}
		return
	}
	d.n.logger.Error("another node claims this node's name; keeping it, the other one must stand down or be renamed",
		"name", existing.Name, "other_addr", otherAddr, "state", d.n.State())
}

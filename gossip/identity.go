package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// A member's identity is what never changes while its process runs: its
// start time, weight, HTTP address and version. memberlist lets any member
// holding the key announce an alive message about any name at any address,
// so identity is checked where memberlist does not:
//
//   - A newcomer under another name at a live member's gossip address is
//     refused (NotifyAlive): memberlist probes members by address, and the
//     process there only answers to its own name.
//   - A live member whose identity changes at the same address is a new
//     process under its name: a restart, or an impostor advertising the
//     member's address. Its new metadata is held back, and the process that
//     actually answers at that address is asked who it is, with a random
//     challenge a process elsewhere cannot see. If it answers with the new
//     identity (a restart), the new metadata is taken; if it answers with the
//     running identity, the claim is refused and the running member's record
//     stays. A member that announced leaving is not held for: its process
//     is on its way out, and a restart grace's resumption should not wait. No answer within identityTimeout (a peer of an older version, a
//     lost packet) takes the new metadata, as before this check.
//
// A member's other fields (state, instants, digests) change while it runs
// and are taken as they come: a process holding the key can still forge
// them under another member's name, and that member refutes the forgery
// within a gossip round (memberlist's refutation). The key is the trust
// boundary; these checks keep a running agent from being replaced.

// Message tags of the identity exchange, after noticeTag.
const (
	whoTag = 'W' // a challenge: who are you at this address?
	iamTag = 'I' // the answer
)

const (
	// identityTimeout is how long a held-back identity waits for the
	// answer before it is taken all the same.
	identityTimeout = 2 * time.Second
	// identityResend resends a challenge whose packet may have been lost.
	identityResend = 500 * time.Millisecond
	// disownedFor is how long an answer that disowns a claim refuses the
	// same claim again without asking: an impostor repeats its claim every
	// time the running member refutes it.
	disownedFor = 30 * time.Second
	// maxClaims bounds the claims held back and the answers remembered.
	maxClaims = 256
)

// Claims refused by shoal_cluster_impostors_refused_total.
const (
	claimName    = "name"
	claimAddress = "address"
)

// identity is a member's fixed metadata.
type identity struct {
	Started int64   `json:"t"`
	Weight  float64 `json:"w"`
	HTTP    string  `json:"h"`
	Version string  `json:"v"`
}

func identityOf(m Meta) identity {
	return identity{Started: unixMilli(m.Started), Weight: m.Weight, HTTP: m.HTTPAddr, Version: m.Version}
}

// challenge is a whoTag message: the asker's address and a nonce.
type challenge struct {
	Nonce string `json:"n"`
	Name  string `json:"m"` // the name asked about
	Reply string `json:"r"` // where to answer
}

// answer is an iamTag message.
type answer struct {
	Nonce string   `json:"n"`
	Name  string   `json:"m"`
	ID    identity `json:"i"`
}

// claim is a member record held back until the process at its address
// confirms the identity it announces.
type claim struct {
	m            member
	running, new identity
	nonce        string
	first, sent  time.Time
}

// identities holds the claims and the answers that disowned one.
type identities struct {
	refused *prometheus.CounterVec

	// mu serializes the decisions on a member's record: track, untrack and
	// the outcome of a claim. It is taken before Node.membersMu.
	mu       sync.Mutex
	claims   map[string]*claim   // by member name
	disowned map[string]disowned // by member name
	// whos are challenges to send; answers are answers to send.
	whos    chan string
	answers chan challenge
}

type disowned struct {
	claim identity
	until time.Time
}

func newIdentities(reg prometheus.Registerer) *identities {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	refused := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_cluster_impostors_refused_total",
		Help: "Claims to be a running member refused, by claim: name (a new process under a running member's name and at its address, which the process there disowns), address (a newcomer at a running member's gossip address under another name).",
	}, []string{"claim"})
	for _, c := range []string{claimName, claimAddress} {
		refused.WithLabelValues(c)
	}
	return &identities{
		refused:  refused,
		claims:   map[string]*claim{},
		disowned: map[string]disowned{},
		whos:     make(chan string, 16),
		answers:  make(chan challenge, 16),
	}
}

// addressTaken returns the name of another live member at addr; called
// from NotifyAlive for a name not known yet.
func (n *Node) addressTaken(name, addr string) string {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	if _, known := n.members[name]; known {
		return ""
	}
	for _, m := range n.members {
		if m.addr == addr && m.name != name {
			return m.name
		}
	}
	return ""
}

// isMemberAddr reports whether addr is a live member's gossip address.
func (n *Node) isMemberAddr(addr string) bool {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	for _, m := range n.members {
		if m.addr == addr && m.name != n.cfg.Name {
			return true
		}
	}
	return false
}

// refuseAddressClaim counts and logs a newcomer at a live member's address.
func (n *Node) refuseAddressClaim(name, addr, holder string) {
	n.idents.refused.WithLabelValues(claimAddress).Inc()
	n.logRefused(name, "refusing a newcomer at a running member's gossip address; the member there keeps it",
		"member", name, "addr", addr, "held_by", holder)
}

// logRefused logs a refused claim once per refusedLogEvery and member.
func (n *Node) logRefused(name, msg string, args ...any) {
	now := n.now()
	n.refusedMu.Lock()
	key := "identity:" + name
	last, seen := n.refused[key]
	if !seen && len(n.refused) >= maxRefusedLogged {
		clear(n.refused)
	}
	logIt := !seen || now.Sub(last) >= refusedLogEvery
	if logIt {
		n.refused[key] = now
	}
	n.refusedMu.Unlock()
	if logIt {
		n.logger.Warn(msg, args...)
	}
}

// track records a member; called from memberlist callbacks. A record that
// changes a live member's identity is held back (see identities).
func (n *Node) track(node *memberlist.Node) {
	m := member{
		name: node.Name,
		addr: net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port))),
		meta: append([]byte(nil), node.Meta...),
	}
	id := n.idents
	id.mu.Lock()
	defer id.mu.Unlock()
	if n.holdClaim(m) {
		return
	}
	n.apply(m)
}

// holdClaim decides, with idents.mu held, whether m claims a live member's
// identity anew, and if so holds it back (or refuses it at once, if the
// process at its address disowned the same claim recently).
func (n *Node) holdClaim(m member) bool {
	id := n.idents
	if m.name == n.cfg.Name {
		return false
	}
	n.membersMu.Lock()
	old, known := n.members[m.name]
	n.membersMu.Unlock()
	if !known || old.addr != m.addr {
		delete(id.claims, m.name)
		return false
	}
	now := n.now()
	oldMeta, err1 := decodeMeta(old.meta, now, n.cfg.HandoffLead)
	newMeta, err2 := decodeMeta(m.meta, now, n.cfg.HandoffLead)
	if err1 != nil || err2 != nil {
		return false
	}
	running, claimed := identityOf(oldMeta), identityOf(newMeta)
	if running == claimed {
		// The running process speaks; a claim held back stays so until
		// its answer comes.
		return false
	}
	if oldMeta.State == StateLeaving {
		// The running process announced its departure: a new process
		// under its name is its restart (keepGrace keeps what the old
		// one still owns), and waiting for its answer would hold a
		// restart grace's resumption back by up to identityTimeout.
		delete(id.claims, m.name)
		return false
	}
	if d, ok := id.disowned[m.name]; ok && d.claim == claimed && time.Now().Before(d.until) {
		n.refuseNameClaim(m, "disowned recently")
		return true
	}
	if c, ok := id.claims[m.name]; ok && c.new == claimed {
		c.m = m // the newest record of the same claim
		return true
	}
	if len(id.claims) >= maxClaims {
		// Under a flood, fall back to memberlist's behaviour.
		return false
	}
	id.claims[m.name] = &claim{m: m, running: running, new: claimed, nonce: nonce(), first: time.Now()}
	select {
	case id.whos <- m.name:
	default:
	}
	return true
}

// refuseNameClaim counts and logs a claim the running member disowned.
func (n *Node) refuseNameClaim(m member, why string) {
	n.idents.refused.WithLabelValues(claimName).Inc()
	n.metrics.conflicts.Inc()
	n.logRefused(m.name, "refusing a new process under a running member's name at its address: the process there disowns it",
		"member", m.name, "addr", m.addr, "why", why)
}

// apply records m, with idents.mu held.
func (n *Node) apply(m member) {
	n.membersMu.Lock()
	old, known := n.members[m.name]
	if known && m.name != n.cfg.Name {
		n.keepGrace(old, m)
	}
	n.members[m.name] = m
	n.membersMu.Unlock()
	n.signal()
	if !known && m.name != n.cfg.Name {
		select {
		case n.joinWake <- struct{}{}:
		default:
		}
	}
}

// keepGrace keeps, with membersMu held, the restart grace of a leaving
// record that a new process's record replaces in place: the new process
// came back at the same address before the old one's leave was heard of (a
// lost leave message, a kill after the announcement), so untrack never ran
// and would not leave its tombstone. Without it the member would own
// nothing until the new process is active, and its peers would take its
// keys during the very grace that was announced to hold them.
func (n *Node) keepGrace(old, m member) {
	if bytes.Equal(old.meta, m.meta) {
		return
	}
	now := n.now()
	was, err := decodeMeta(old.meta, now, n.cfg.HandoffLead)
	if err != nil || was.State != StateLeaving || !was.Until.After(now) {
		return
	}
	is, err := decodeMeta(m.meta, now, n.cfg.HandoffLead)
	if err != nil || is.Started.Equal(was.Started) {
		return // the same process, still leaving
	}
	if t, ok := n.tombs[m.name]; ok && !t.until.Before(was.Until) {
		return
	}
	n.tombs[m.name] = tomb{name: m.name, weight: was.Weight, since: was.Since, until: was.Until}
}

// forgetClaim drops a claim about a member that left or died.
func (n *Node) forgetClaim(name string) {
	delete(n.idents.claims, name)
}

// receiveWho queues the answer to a challenge about this node; called from
// NotifyMsg. The answer goes only to a member's address, so that a
// challenge cannot make this node send packets anywhere else.
func (n *Node) receiveWho(b []byte) {
	var c challenge
	if json.Unmarshal(b, &c) != nil || c.Nonce == "" || c.Name != n.cfg.Name || !n.isMemberAddr(c.Reply) {
		return
	}
	select {
	case n.idents.answers <- c:
	default:
	}
}

// receiveAnswer settles the claim the answer is about; called from
// NotifyMsg. Only the process that got the challenge, sent to the claimed
// address, knows its nonce.
func (n *Node) receiveAnswer(b []byte) {
	var a answer
	if json.Unmarshal(b, &a) != nil || a.Nonce == "" {
		return
	}
	id := n.idents
	id.mu.Lock()
	defer id.mu.Unlock()
	c, ok := id.claims[a.Name]
	if !ok || c.nonce != a.Nonce {
		return
	}
	delete(id.claims, a.Name)
	switch a.ID {
	case c.new:
		n.logger.Info("a member restarted under its name and address", "member", a.Name, "addr", c.m.addr)
		n.apply(c.m)
	default:
		if len(id.disowned) >= maxClaims {
			clear(id.disowned)
		}
		id.disowned[a.Name] = disowned{claim: c.new, until: time.Now().Add(disownedFor)}
		n.refuseNameClaim(c.m, "the process at the address answered with another identity")
	}
}

// identifier sends challenges and answers, resends challenges and settles
// those that get no answer. It runs with the node.
func (n *Node) identifier(ctx context.Context, ml *memberlist.Memberlist) {
	id := n.idents
	tick := time.NewTicker(identityResend / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-id.whos:
			n.sendWho(ml, name)
		case c := <-id.answers:
			b, err := json.Marshal(answer{Nonce: c.Nonce, Name: n.cfg.Name, ID: identityOf(n.localMeta())})
			if err == nil {
				_ = ml.SendToAddress(memberlist.Address{Addr: c.Reply}, append([]byte{iamTag}, b...))
			}
		case <-tick.C:
			n.settleClaims(ml)
		}
	}
}

// sendWho sends the challenge of the claim about name, if it is still held.
func (n *Node) sendWho(ml *memberlist.Memberlist, name string) {
	id := n.idents
	id.mu.Lock()
	c, ok := id.claims[name]
	var msg []byte
	var addr string
	if ok {
		c.sent = time.Now()
		addr = c.m.addr
		b, err := json.Marshal(challenge{Nonce: c.nonce, Name: name, Reply: n.advertised()})
		if err == nil {
			msg = append([]byte{whoTag}, b...)
		}
	}
	id.mu.Unlock()
	if msg == nil {
		return
	}
	if err := ml.SendToAddress(memberlist.Address{Addr: addr, Name: name}, msg); err != nil {
		n.logger.Debug("cannot ask a member who it is", "member", name, "addr", addr, "err", err)
	}
}

// settleClaims resends the challenges that got no answer and takes the
// claims that got none within identityTimeout.
func (n *Node) settleClaims(ml *memberlist.Memberlist) {
	id := n.idents
	var resend []string
	id.mu.Lock()
	now := time.Now()
	for name, c := range id.claims {
		switch {
		case now.Sub(c.first) >= identityTimeout:
			delete(id.claims, name)
			n.logger.Info("a member's new identity was not confirmed by its address in time; taking it",
				"member", name, "addr", c.m.addr, "waited", now.Sub(c.first).Round(time.Millisecond))
			n.apply(c.m)
		case now.Sub(c.sent) >= identityResend:
			resend = append(resend, name)
		}
	}
	id.mu.Unlock()
	for _, name := range resend {
		n.sendWho(ml, name)
	}
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

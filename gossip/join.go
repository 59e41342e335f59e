package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// errStopping is returned by the start-up waits when Run's context is done
// or the node announced leaving: it must not become active.
var errStopping = errors.New("stopping before the node became active")

// Bounds of the initial join.
const (
	joinBackoffMin = 100 * time.Millisecond
	joinBackoffMax = 5 * time.Second
	// acceptRecheck is how long a joiner waits before asking a peer that
	// answered once more whether it lists the joiner: the peer merges the
	// joiner's state only after it sent its own.
	acceptRecheck = 100 * time.Millisecond
	// joinLogEvery: a reason that does not change is logged at warning
	// level this often, and at debug level in between.
	joinLogEvery = 30 * time.Second
	// sizePoll is how often the wait for --cluster.wait-for-size looks
	// for more peers.
	sizePoll = time.Second
	// leaveNotice: a node that announced an owning instant (Since) further
	// ahead than this when it starts leaving leaves at once, owning
	// nothing: its peers learn it before they would have handed over.
	leaveNotice = time.Second
)

// Results of a join attempt, as labels of shoal_cluster_join_attempts_total.
const (
	joinJoined     = "joined"
	joinRefused    = "refused"
	joinUnanswered = "unanswered"
)

// attempt is what one round of join exchanges found.
type attempt struct {
	accepted   bool
	refused    []string // "addr: reason", sorted
	unanswered []string // "addr: error", sorted
}

// start runs the node from creation to active: it joins (or starts alone),
// waits for --cluster.wait-for-size and becomes active. It returns nil
// when the node became active or must not (ctx is done, or it started
// leaving), and ErrNameConflict when this node must stand down.
func (n *Node) start(ctx context.Context, ml *memberlist.Memberlist) error {
	err := n.join(ctx, ml)
	if err == nil {
		err = n.waitForSize(ctx, ml)
	}
	if err == nil {
		err = n.waitForClock(ctx)
	}
	if errors.Is(err, errStopping) {
		return nil
	}
	if err != nil {
		return err
	}
	n.activate(ml)
	return nil
}

// join returns nil once this node is in a cluster: alone without Peers, a
// peer accepted it, or (Bootstrap) nobody answered for BootstrapTimeout.
// It retries with backoff for ever otherwise, and says why in the log and
// in NotReadyReason.
func (n *Node) join(ctx context.Context, ml *memberlist.Memberlist) error {
	if n.alone {
		n.logger.Info("no --cluster.join: starting a new cluster")
		return nil
	}
	quiet := time.Now() // since when no peer answered and refused
	backoff := joinBackoffMin
	var lastReason string
	var lastLogged time.Time
	for try := 1; ; try++ {
		select {
		case <-n.leavingCh:
			return errStopping
		default:
		}
		addrs, perr := n.cfg.Peers(ctx)
		others := n.others(append(addrs, n.memberAddrs()...))
		at := n.exchange(ml, others)
		select {
		case other := <-n.conflict:
			return n.nameConflict(other)
		default:
		}
		if at.accepted {
			n.metrics.joinAttempts.WithLabelValues(joinJoined).Inc()
			n.logger.Info("joined cluster", "members", ml.NumMembers(), "attempt", try)
			return nil
		}
		if len(at.refused) > 0 {
			quiet = time.Now()
			n.metrics.joinAttempts.WithLabelValues(joinRefused).Inc()
		} else {
			n.metrics.joinAttempts.WithLabelValues(joinUnanswered).Inc()
		}
		if n.cfg.Bootstrap && len(at.refused) == 0 && time.Since(quiet) >= n.cfg.BootstrapTimeout {
			n.logger.Warn("no peer answered, starting a new cluster (--cluster.bootstrap)",
				"for", time.Since(quiet).Round(time.Millisecond), "peers", len(others), "unanswered", strings.Join(at.unanswered, "; "))
			return nil
		}
		reason := n.joinReason(at, perr, others)
		n.setStatus(fmt.Sprintf("not joined the cluster (attempt %d, retrying): %s", try, reason))
		if reason != lastReason || time.Since(lastLogged) >= joinLogEvery {
			n.logger.Warn("cannot join the cluster, owning nothing; will retry", "reason", reason, "attempt", try, "backoff", backoff)
			lastReason, lastLogged = reason, time.Now()
		} else {
			n.logger.Debug("cannot join the cluster, will retry", "reason", reason, "attempt", try)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errStopping
		case <-n.leavingCh:
			t.Stop()
			return errStopping
		case <-n.crash:
			t.Stop()
			return errStopping
		case other := <-n.conflict:
			t.Stop()
			return n.nameConflict(other)
		case <-n.joinWake:
			// A member appeared: it may have accepted us.
		case <-n.nudge:
			// The peer list changed (TriggerRejoin).
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// joinReason says why an attempt did not join, for the log and /-/ready.
func (n *Node) joinReason(at attempt, perr error, others []string) string {
	var parts []string
	if len(at.refused) > 0 {
		parts = append(parts, "refused by "+strings.Join(at.refused, "; refused by "))
	}
	if len(at.unanswered) > 0 {
		parts = append(parts, "no answer from "+strings.Join(at.unanswered, "; "))
	}
	if perr != nil {
		parts = append(parts, "listing peers (--cluster.join): "+perr.Error())
	}
	if len(others) == 0 && perr == nil {
		parts = append(parts, "--cluster.join names no peer but this agent")
	}
	if len(at.refused) == 0 {
		if n.cfg.Bootstrap {
			parts = append(parts, fmt.Sprintf("starting a new cluster once no peer answered for %s (--cluster.bootstrap)", n.cfg.BootstrapTimeout))
		} else {
			parts = append(parts, "pass --cluster.bootstrap to let the first agent of a new cluster start alone")
		}
	}
	return strings.Join(parts, "; ")
}

// exchange runs one push/pull with every address and reports whether a peer
// lists this node as alive afterwards (it accepted it), and why the others
// did not.
func (n *Node) exchange(ml *memberlist.Memberlist, addrs []string) attempt {
	var (
		at       attempt
		mu       sync.Mutex
		wg       sync.WaitGroup
		sem      = make(chan struct{}, rejoinParallel)
		answered []string
	)
	for _, a := range addrs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := ml.Join([]string{a})
			var why string
			ok := err == nil
			if !ok && answeredJoin(err) {
				why = n.explainRefusal(a, err)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ok:
				answered = append(answered, a)
			case why != "":
				at.refused = append(at.refused, a+": "+why)
			default:
				at.unanswered = append(at.unanswered, a+": "+joinError(a, err))
			}
		})
	}
	wg.Wait()
	// A peer sends its state before it merges ours: ask again to learn
	// whether it took us in.
	for i := 0; i < 2 && !n.accepted.Load() && len(answered) > 0; i++ {
		if i > 0 {
			time.Sleep(acceptRecheck)
		}
		for _, a := range answered {
			_, _ = ml.Join([]string{a})
		}
	}
	at.accepted = n.accepted.Load()
	if !at.accepted {
		for _, a := range answered {
			at.refused = append(at.refused, a+": "+n.noticeFor(a))
		}
	}
	slices.Sort(at.refused)
	slices.Sort(at.unanswered)
	return at
}

// answeredJoin reports whether a failed join reached a peer that answered
// (and refused) rather than nobody: a dial that failed or an exchange that
// timed out is no answer.
func answeredJoin(err error) bool {
	s := err.Error()
	for _, silent := range []string{"dial tcp", "i/o timeout", "connection refused", "no route to host", "network is unreachable", "failed to resolve"} {
		if strings.Contains(s, silent) {
			return false
		}
	}
	return true
}

// joinError extracts memberlist's error for addr from Join's list.
func joinError(addr string, err error) string {
	s := err.Error()
	prefix := "failed to join " + addr + ": "
	if i := strings.Index(s, prefix); i >= 0 {
		s = s[i+len(prefix):]
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// explainRefusal turns memberlist's error from a peer that answered into
// what differs, asking the peer's hello when the error does not say.
func (n *Node) explainRefusal(addr string, err error) string {
	raw := joinError(addr, err)
	switch {
	case strings.Contains(raw, "no installed keys could decrypt"):
		return "its gossip key differs: no key in our keyring (--cluster.secret-key-file) decrypts its answer"
	case strings.Contains(raw, "remote state is encrypted and encryption is not configured"):
		return "it gossips with a key and this agent has none (--cluster.secret-key-file)"
	case strings.Contains(raw, "encryption is configured but remote state is not encrypted"):
		return "it gossips without a key and this agent has one (--cluster.secret-key-file)"
	}
	h, herr := askHello(addr)
	switch {
	case herr != nil:
		return fmt.Sprintf("it closed the exchange (%s); it is not a shoal agent of this version, or its --cluster.name differs from ours %q", raw, n.cfg.ClusterName)
	case h.Cluster != n.cfg.ClusterName:
		return fmt.Sprintf("cluster name %q differs from ours %q (--cluster.name)", h.Cluster, n.cfg.ClusterName)
	case h.Encrypted != (n.keys != nil):
		return fmt.Sprintf("it gossips %s and this agent %s (--cluster.secret-key-file)", withOrWithout(h.Encrypted), withOrWithout(n.keys != nil))
	}
	return "it closed the exchange: " + raw
}

func withOrWithout(key bool) string {
	if key {
		return "with a key"
	}
	return "without a key"
}

// memberAddrs lists the addresses of the members memberlist knows: a peer
// that joined this node is asked whether it accepted it.
func (n *Node) memberAddrs() []string {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	out := make([]string, 0, len(n.members))
	for _, m := range n.members {
		if m.name != n.cfg.Name {
			out = append(out, m.addr)
		}
	}
	return out
}

// nameConflict stands down: an older member uses this node's name.
func (n *Node) nameConflict(other string) error {
	n.logger.Error("another node already uses this node's name; standing down before joining",
		"name", n.cfg.Name, "other_addr", other)
	return fmt.Errorf("%w: %q is used by %s", ErrNameConflict, n.cfg.Name, other)
}

// waitForSize keeps the node joining until WaitForSize members are alive
// and not leaving, or WaitForSizeTimeout passed since Run started.
func (n *Node) waitForSize(ctx context.Context, ml *memberlist.Memberlist) error {
	want := n.cfg.WaitForSize
	if want <= 1 {
		return nil
	}
	var deadline <-chan time.Time
	if n.cfg.WaitForSizeTimeout > 0 {
		t := time.NewTimer(n.started.Add(n.cfg.WaitForSizeTimeout).Sub(n.now()))
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(sizePoll / 5)
	defer tick.Stop()
	lastRejoin := time.Now()
	logged := false
	for {
		have := n.liveMembers()
		if len(have) >= want {
			n.logger.Info("cluster reached --cluster.wait-for-size", "members", len(have), "want", want)
			return nil
		}
		n.setStatus(fmt.Sprintf("waiting for %d members (--cluster.wait-for-size), %d so far: %s", want, len(have), strings.Join(have, ", ")))
		if !logged {
			n.logger.Info("waiting for more members before owning targets (--cluster.wait-for-size)", "members", len(have), "want", want, "timeout", n.cfg.WaitForSizeTimeout)
			logged = true
		}
		select {
		case <-ctx.Done():
			return errStopping
		case <-n.leavingCh:
			return errStopping
		case <-n.crash:
			return errStopping
		case other := <-n.conflict:
			return n.nameConflict(other)
		case <-deadline:
			n.logger.Warn("--cluster.wait-for-size-timeout passed, going on with the members there are", "members", len(have), "want", want)
			return nil
		case <-n.joinWake:
		case <-tick.C:
			if time.Since(lastRejoin) >= sizePoll && !n.alone {
				n.rejoin(ctx, ml)
				lastRejoin = time.Now()
			}
		}
	}
}

// liveMembers names the members, this one included, that are joining or
// active.
func (n *Node) liveMembers() []string {
	n.rebuild()
	var out []string
	for _, p := range n.Peers() {
		if p.State == StateJoining || p.State == StateActive {
			out = append(out, p.Name)
		}
	}
	return out
}

// activate makes the node active, unless it started leaving meanwhile.
func (n *Node) activate(ml *memberlist.Memberlist) {
	// The members a join found are tracked already (memberlist's callbacks
	// ran during the exchange); bring the schedule up to date with them.
	n.rebuild()
	now := n.now()
	since := now.Add(n.cfg.HandoffLead)
	switch {
	case n.cfg.Resume.After(now):
		// Our peers hold our keys for us: nobody scrapes them now.
		since = now
		n.logger.Info("resuming ownership at once: peers hold this node's targets until its restart grace ends", "until", n.cfg.Resume)
	case n.sched.Load().Final().Len() == 0:
		// Nobody owns keys (the first node of a cluster, one restarting
		// alone, a new cluster forming): the lead would only throw slots
		// away, since nobody else scrapes them.
		since = now
		n.logger.Info("no member owns keys: owning this node's share at once, without the handoff lead", "members", ml.NumMembers())
	}
	if !n.transition(StateActive, since, time.Time{}) {
		n.logger.Info("not becoming active: the node started leaving")
	}
}

// notice is a refusal a node sends to a peer whose alive message it
// refused, so that the peer can say why it cannot join. It travels as a
// memberlist user message: encrypted and authenticated like any gossip.
type notice struct {
	Name   string `json:"n"`
	Addr   string `json:"a"`
	Reason string `json:"r"`
}

// noticeTag starts a notice's user message.
const noticeTag = 'R'

// noticeEvery rate-limits the notices to one address.
const noticeEvery = 2 * time.Second

// maxNotices bounds the notices kept and the rate limiter's memory.
const maxNotices = 64

// queueNotice asks the noticer to tell addr why its alive message was
// refused; called from memberlist callbacks, it never blocks.
func (n *Node) queueNotice(name, addr string, err error) {
	select {
	case n.notices <- notice{Name: name, Addr: addr, Reason: err.Error()}:
	default:
	}
}

// noticer sends queued notices.
func (n *Node) noticer(ctx context.Context, ml *memberlist.Memberlist) {
	sent := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case nt := <-n.notices:
			if time.Since(sent[nt.Addr]) < noticeEvery {
				continue
			}
			if len(sent) >= maxNotices {
				clear(sent)
			}
			sent[nt.Addr] = time.Now()
			b, err := json.Marshal(notice{Name: n.cfg.Name, Addr: n.advertised(), Reason: fmt.Sprintf("it refused this agent (%s): %s", nt.Name, nt.Reason)})
			if err != nil {
				continue
			}
			if err := ml.SendToAddress(memberlist.Address{Addr: nt.Addr, Name: nt.Name}, append([]byte{noticeTag}, b...)); err != nil {
				n.logger.Debug("cannot tell a refused peer why", "addr", nt.Addr, "err", err)
			}
		}
	}
}

// receiveNotice records a notice from a peer that refused this node.
func (n *Node) receiveNotice(b []byte) {
	var nt notice
	if json.Unmarshal(b, &nt) != nil || nt.Addr == "" || len(nt.Reason) > 1024 {
		return
	}
	n.noticesMu.Lock()
	defer n.noticesMu.Unlock()
	if len(n.received) >= maxNotices {
		clear(n.received)
	}
	n.received[nt.Addr] = nt
}

// noticeFor says why the peer at addr, which answered, did not take this
// node in.
func (n *Node) noticeFor(addr string) string {
	n.noticesMu.Lock()
	nt, ok := n.received[addr]
	n.noticesMu.Unlock()
	if ok {
		return nt.Reason
	}
	return "it answered but does not list this agent as a member: it refused its metadata (see its log and shoal_cluster_peer_meta_rejected_total)"
}

// setStatus records why the node is not active yet.
func (n *Node) setStatus(s string) { n.status.Store(&s) }

// NotReadyReason says why the node is not active: joining (and why it
// cannot join), waiting for --cluster.wait-for-size, or leaving; "" when
// it is active.
func (n *Node) NotReadyReason() string {
	switch n.State() {
	case StateActive:
		return ""
	case StateLeaving:
		return "leaving the cluster"
	}
	if p := n.status.Load(); p != nil {
		return *p
	}
	return "not joined the cluster yet"
}

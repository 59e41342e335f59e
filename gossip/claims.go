package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// refusedLogEvery rate-limits the log of one member's refused metadata:
// memberlist repeats an alive message to every member several times.
const refusedLogEvery = time.Minute

// maxRefusedLogged bounds the rate limiter's memory of member names.
const maxRefusedLogged = 1024

// peerMeta decodes and checks a peer's metadata as of now; a refusal is
// counted and logged (once per refusedLogEvery and member). It is called
// from memberlist callbacks and never blocks.
func (n *Node) peerMeta(name string, b []byte) (Meta, error) {
	now := n.now()
	m, err := decodeMeta(b, now, n.cfg.HandoffLead)
	if err == nil {
		return m, nil
	}
	reason := reasonOf(err)
	n.metrics.refused.WithLabelValues(reason).Inc()
	n.refusedMu.Lock()
	last, seen := n.refused[name]
	if !seen && len(n.refused) >= maxRefusedLogged {
		clear(n.refused)
	}
	logIt := !seen || now.Sub(last) >= refusedLogEvery
	if logIt {
		n.refused[name] = now
	}
	n.refusedMu.Unlock()
	if logIt {
		n.logger.Warn("refusing a member's metadata; it stays out of the ring", "member", name, "reason", reason, "err", err)
	}
	return Meta{}, err
}

// mustYield reports whether this node, in state mine and started at started
// with address myAddr, must stand down in favour of another node claiming its
// name. A node that has finished joining never yields: the claim comes from
// a newcomer, and a newcomer's metadata (its start time, its state) is only
// its word. A node still joining yields to a member that has joined, and to
// an older one when both are joining (two processes started with one name).
func mustYield(mine State, started time.Time, other Meta, myAddr, otherAddr string) bool {
	if mine != StateJoining {
		return false
	}
	if other.State != StateJoining {
		return true
	}
	if other.Started.IsZero() {
		return false
	}
	if !other.Started.Equal(started) {
		return other.Started.Before(started)
	}
	return otherAddr < myAddr
}

// ValidateHTTPAddr checks an advertised HTTP address: host:port and nothing
// else (no scheme, path, query, fragment or userinfo), the host an IP
// address or a DNS name, the port a decimal number. Peers build URLs from it
// with shoal's own paths only, so it cannot point them at another path.
func ValidateHTTPAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if !validPort(port) {
		return fmt.Errorf("port must be a number between 0 and 65535, got %q", port)
	}
	if host == "" {
		return errors.New("host must not be empty")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("host must be an IP address or a DNS name, got %q", host)
	}
	return nil
}

func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	p, err := strconv.Atoi(s)
	return err == nil && p <= 65535
}

// validHostname accepts DNS names: dot-separated labels of letters, digits,
// hyphens and underscores (compose service names), 1 to 63 bytes each, 253
// in all, optionally with a final dot.
func validHostname(h string) bool {
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if h == "" || len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0
}

package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

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

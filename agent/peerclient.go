package agent

import (
	"net/http"
	"time"
)

// newPeerClient returns the HTTP client for this agent's requests to its
// peers' APIs (handoff confirmation, predecessors' delivery, discovery
// differences, the status page's figures). It never follows a redirect: the
// address comes from a peer's gossip metadata and the path is shoal's own,
// so a peer answering 302 must not make this agent request another address
// or path. The redirect itself is returned as the response, and callers
// treat anything but 200 as a failure.
func newPeerClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
)

// TestPeerRequestsDoNotFollowRedirects: a peer whose API answers 302 to
// another address (or another path of its own) does not make this agent
// request it, neither for a handoff confirmation nor for a predecessor's
// delivery.
func TestPeerRequestsDoNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	var asked atomic.Int64
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, target.URL+"/secret?x=1", http.StatusFound)
	}))
	defer peer.Close()
	addr := strings.TrimPrefix(peer.URL, "http://")
	ctx := context.Background()

	_, err := peerActiveTargets(ctx, newPeerClient(handoffRequestTimeout), addr)
	require.ErrorContains(t, err, "302 Found")

	p := &predecessors{self: "me", client: newPeerClient(predecessorTimeout), addrs: map[string]string{}}
	p.peers = func() []gossip.Peer { return []gossip.Peer{{Name: "p", HTTPAddr: addr}} }
	_, err = p.DeliveredThrough(ctx, "p", "")
	require.ErrorContains(t, err, "302 Found")

	require.EqualValues(t, 2, asked.Load(), "the peer was asked")
	require.Zero(t, elsewhere.Load(), "the redirect was not followed")

	// The control: Go's default client would have followed it.
	resp, err := http.Get(peer.URL)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.EqualValues(t, 1, elsewhere.Load())
}

// TestPlannerPeerRequests: the planner's requests (a peer's plan, its load,
// the leader's placement view) go to the peer's advertised host:port and
// shoal's path only: a redirect is not followed, and an address that is not
// plain host:port (with a path or a query that would change what is asked)
// is refused before any request.
func TestPlannerPeerRequests(t *testing.T) {
	var elsewhere, asked atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if strings.HasPrefix(r.URL.Path, "/api/v1/cluster/") {
			http.Redirect(w, r, target.URL+"/api/v1/cluster/plan", http.StatusFound)
			return
		}
		elsewhere.Add(1) // a path shoal does not ask for
	}))
	defer peer.Close()
	addr := strings.TrimPrefix(peer.URL, "http://")
	ctx := context.Background()
	p := &planner{client: newPeerClient(planFetchTimeout)}

	_, err := fetchPlan(ctx, p.client, addr)
	require.ErrorContains(t, err, "302 Found")
	_, err = fetchLoad(ctx, p.client, addr)
	require.ErrorContains(t, err, "302 Found")
	var env struct{}
	require.ErrorContains(t, getPeerJSON(ctx, p.client, addr, "/api/v1/cluster/placement?local=1", 1<<10, &env), "302 Found")
	require.EqualValues(t, 3, asked.Load(), "the peer was asked")
	require.Zero(t, elsewhere.Load(), "the redirect was not followed")

	for _, bad := range []string{addr + "/secret?x=", addr + "/secret#", "u@" + addr, "http://" + addr} {
		_, err = fetchPlan(ctx, p.client, bad)
		require.ErrorContains(t, err, "peer http address", bad)
		_, err = fetchLoad(ctx, p.client, bad)
		require.ErrorContains(t, err, "peer http address", bad)
	}
	require.EqualValues(t, 3, asked.Load(), "no request for an address that is not host:port")
	require.Zero(t, elsewhere.Load())
}

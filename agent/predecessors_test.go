package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/delivery"
	"github.com/shoal-dev/shoal/gossip"
)

func TestPredecessorsAskPeersAPI(t *testing.T) {
	through := time.UnixMilli(1_800_000_000_123).UTC()
	status := http.StatusOK
	lastErr, waitingFor := "503", ""
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/delivery", r.URL.Path)
		if status != http.StatusOK {
			http.Error(rw, "no", status)
			return
		}
		writeJSON(rw, Delivery{Endpoints: []DeliveryEndpoint{{DeliveredThrough: through, EndpointStatus: delivery.EndpointStatus{LastError: lastErr, WaitingFor: waitingFor}}}})
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	members := map[string]string{"p": addr}
	p := &predecessors{self: "me", client: http.DefaultClient, addrs: map[string]string{}}
	p.peers = func() []gossip.Peer {
		var ps []gossip.Peer
		for name, a := range members {
			ps = append(ps, gossip.Peer{Name: name, HTTPAddr: a})
		}
		return ps
	}
	ctx := context.Background()

	got, err := p.DeliveredThrough(ctx, "p", "")
	require.NoError(t, err)
	require.True(t, got.Found)
	require.True(t, got.Blocked, "the peer's last send failed")
	require.True(t, got.Through.Equal(through), "%s", got.Through)

	// Holding for another agent blocks it too; holding for the asker is a
	// cycle, which the asker's wait must be able to break.
	lastErr = ""
	for _, tc := range []struct {
		waiting string
		blocked bool
	}{{"", false}, {"q", true}, {"me", false}} {
		waitingFor = tc.waiting
		got, err = p.DeliveredThrough(ctx, "p", "")
		require.NoError(t, err)
		require.Equal(t, tc.blocked, got.Blocked, "waiting for %q", tc.waiting)
	}

	got, err = p.DeliveredThrough(ctx, "p", "other")
	require.NoError(t, err)
	require.False(t, got.Found, "no such endpoint at the peer: nothing to wait for")

	_, err = p.DeliveredThrough(ctx, "nobody", "")
	require.ErrorIs(t, err, errNoAddress)

	// A member that left is asked at its last known address.
	delete(members, "p")
	got, err = p.DeliveredThrough(ctx, "p", "")
	require.NoError(t, err)
	require.True(t, got.Found)

	for _, code := range []int{http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden} {
		status = code
		got, err = p.DeliveredThrough(ctx, "p", "")
		require.NoError(t, err, "%d: the peer cannot be asked, never will", code)
		require.False(t, got.Found)
	}
	status = http.StatusServiceUnavailable
	_, err = p.DeliveredThrough(ctx, "p", "")
	require.ErrorContains(t, err, "503", "a transient failure: ask again")

	srv.Close()
	_, err = p.DeliveredThrough(ctx, "p", "")
	require.Error(t, err, "the peer is gone: ask again, the sender bounds the wait")
}

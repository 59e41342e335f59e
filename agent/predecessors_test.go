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
)

func TestPredecessorsAskPeersAPI(t *testing.T) {
	through := time.UnixMilli(1_800_000_000_123).UTC()
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/delivery", r.URL.Path)
		if status != http.StatusOK {
			http.Error(rw, "no", status)
			return
		}
		writeJSON(rw, Delivery{Endpoints: []DeliveryEndpoint{{DeliveredThrough: through, EndpointStatus: delivery.EndpointStatus{LastError: "503"}}}})
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	members := map[string]string{"p": addr}
	p := newPredecessors(nil)
	p.lookup = func(name string) (string, bool) { a, ok := members[name]; return a, ok }
	ctx := context.Background()

	got, err := p.DeliveredThrough(ctx, "p", "")
	require.NoError(t, err)
	require.True(t, got.Found)
	require.True(t, got.Failing, "the peer's last send failed")
	require.True(t, got.Through.Equal(through), "%s", got.Through)

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

package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMembersActive(t *testing.T) {
	m := Members{Members: []Member{
		{Name: "c", State: "active", OwnedTargets: 2}, {Name: "a", State: "active", OwnedTargets: 3},
		{Name: "b", State: "leaving"}, {Name: "d", State: "joining"},
	}}
	require.Equal(t, []string{"a", "c"}, m.Active())
	require.Equal(t, 5, m.Owned())
	require.Empty(t, Members{}.Active())
}

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/cluster/members":
			_, _ = w.Write([]byte(`{"status":"success","data":{"self":"a","agree":true,"replicationFactor":1,"members":[{"name":"a","state":"active","ownedTargets":4,"agrees":true}]}}`))
		case "/api/v1/targets":
			_, _ = w.Write([]byte(`{"status":"success","data":{"activeTargets":[{"labels":{"instance":"h:1"},"scrapePool":"farm","scrapeUrl":"http://h:1/metrics","health":"up"}],"droppedTargets":[]}}`))
		case "/api/v1/cluster/self":
			_, _ = w.Write([]byte(`{"status":"error","error":"not yet"}`))
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := NewClient("a", srv.URL)
	defer c.CloseIdleConnections()
	ctx := t.Context()

	m, err := c.Members(ctx)
	require.NoError(t, err)
	require.True(t, m.Agree)
	require.Equal(t, 1, m.Replicas)
	require.Equal(t, []string{"a"}, m.Active())

	ts, err := c.ActiveTargets(ctx)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, "h:1", ts[0].Instance())
	require.Equal(t, "up", string(ts[0].Health))

	_, err = c.Self(ctx)
	require.ErrorContains(t, err, `status "error": not yet`)
	require.ErrorContains(t, c.Ready(ctx), "503")
}

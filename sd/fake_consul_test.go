package sd

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// fakeConsul serves handler as a Consul HTTP API, for error-path unit tests.
func fakeConsul(t *testing.T, handler http.HandlerFunc) *api.Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	cfg := api.DefaultConfig()
	cfg.Address = u.Host
	cfg.Scheme = "http"
	tr := cfg.Transport
	t.Cleanup(tr.CloseIdleConnections)
	client, err := api.NewClient(cfg)
	require.NoError(t, err)
	return client
}

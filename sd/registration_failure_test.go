package sd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/internal/testenv"
)

// runFailing runs a registration against client until the test ends; it
// returns the registration, its registry and its log.
func runFailing(t *testing.T, client *api.Client, service string) (*Registration, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	cfg := DefaultRegistrationConfig()
	cfg.Service, cfg.TTL = service, 1500*time.Millisecond // renewals every 500ms, each within 500ms
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	r, err := NewRegistration(client, RegistrationOptions{
		RegistrationConfig: cfg, ID: "n1", Address: "127.0.0.1", Port: 8080, GossipAddr: "127.0.0.1:7946",
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() bool { return true }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return r, reg, logs
}

func failures(r *Registration, reason string) float64 {
	return testutil.ToFloat64(r.failures.WithLabelValues(reason))
}

// TestRegistrationFailures: each way Consul can fail the registration is
// counted under its reason, shown by Status and logged once, not as a lost
// registration; when Consul answers again the registration recovers.
func TestRegistrationFailures(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		fail   func(w http.ResponseWriter, r *http.Request)
	}{
		{"403", ReasonForbidden, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "Permission denied: token with AccessorID '...' lacks permission 'service:write' on \"shoal\"", http.StatusForbidden)
		}},
		{"404", ReasonNotFound, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "Unknown check ID", http.StatusNotFound) }},
		{"500", ReasonServerError, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "rpc error", http.StatusInternalServerError)
		}},
		{"timeout", ReasonTimeout, func(_ http.ResponseWriter, r *http.Request) {
			// Read the body: the server notices the client going away
			// (its context ends) only once the body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var healthy atomic.Bool
			client := fakeConsul(t, func(w http.ResponseWriter, r *http.Request) {
				if !healthy.Load() {
					tt.fail(w, r)
				}
			})
			r, reg, logs := runFailing(t, client, "shoal")
			require.Eventually(t, func() bool { return failures(r, tt.reason) >= 3 }, 10*time.Second, 10*time.Millisecond)
			st := r.Status()
			require.False(t, st.OK)
			require.Equal(t, tt.reason, st.Reason)
			require.GreaterOrEqual(t, st.Failures, 3)
			require.True(t, st.LastSuccess.IsZero())
			require.NotEmpty(t, st.LastError)
			require.Equal(t, 0.0, testutil.ToFloat64(r.lastOK))
			require.Equal(t, 1, strings.Count(logs.String(), "consul registration failing"), "logged once, not at every renewal")
			require.NotContains(t, logs.String(), "level=INFO msg=\"consul does not know", "a 403 or a timeout is not a lost registration")
			for _, other := range reasons {
				if other != tt.reason {
					require.Zero(t, failures(r, other), other)
				}
			}
			n, err := testutil.GatherAndCount(reg, "shoal_consul_registration_failures_total")
			require.NoError(t, err)
			require.Equal(t, len(reasons), n, "every reason is exported from the start")

			healthy.Store(true)
			require.Eventually(t, func() bool { return r.Status().OK }, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, 1.0, testutil.ToFloat64(r.lastOK))
			require.InDelta(t, float64(time.Now().Unix()), testutil.ToFloat64(r.lastSuccess), 5)
			require.Contains(t, logs.String(), "consul registration works again")
		})
	}
}

func TestRegistrationUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	srv.Close()
	client, err := ConsulConfig{Address: u.Host}.Client(nil)
	require.NoError(t, err)
	r, _, _ := runFailing(t, client, "shoal")
	require.Eventually(t, func() bool { return failures(r, ReasonUnreachable) >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, ReasonUnreachable, r.Status().Reason)
}

// TestRegistrationWithACLs runs against a real Consul with ACLs (default
// deny): with an unknown token the registration fails as forbidden, shown
// by the metric and the status; writing the right token into the token
// file fixes it without a restart; emptying the file keeps the good token.
func TestRegistrationWithACLs(t *testing.T) {
	testenv.SkipWithout(t, testenv.ConsulBinary)
	const root = "11111111-2222-3333-4444-555555555555"
	consul, err := testenv.RunConsul(t.Context(), testenv.ForTest(t), testenv.ConsulOptions{ACLToken: root})
	require.NoError(t, err)
	admin := consul.Client()
	_, _, err = admin.ACL().PolicyCreate(&api.ACLPolicy{Name: "shoal-acl", Rules: `service "shoal-acl" { policy = "write" }`}, nil)
	require.NoError(t, err)
	good, _, err := admin.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{Name: "shoal-acl"}}}, nil)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600))
	cc := ConsulConfig{Address: consul.Addr, TokenFile: path}
	require.NoError(t, cc.Validate())
	logs := &syncBuffer{}
	tok, err := OpenTokenFile(path, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	tok.PollInterval = 20 * time.Millisecond
	client, err := cc.Client(tok)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	tokDone := make(chan error, 1)
	go func() { tokDone <- tok.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-tokDone)
	})

	r, _, rlogs := runFailing(t, client, "shoal-acl")
	require.Eventually(t, func() bool { return failures(r, ReasonForbidden) >= 2 }, 20*time.Second, 20*time.Millisecond)
	st := r.Status()
	require.Equal(t, ReasonForbidden, st.Reason)
	require.Contains(t, st.LastError, "403")
	require.Contains(t, rlogs.String(), "lacks service:write on shoal-acl")
	passing := func() bool {
		es, _, err := admin.Health().Service("shoal-acl", "", true, nil)
		return err == nil && len(es) == 1
	}
	require.False(t, passing())

	require.NoError(t, os.WriteFile(path, []byte(good.SecretID+"\n"), 0o600))
	require.Eventually(t, func() bool { return r.Status().OK && passing() }, 20*time.Second, 20*time.Millisecond, "the rotated token is not used")
	require.Contains(t, logs.String(), "consul token changed")

	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "keeping the running token") }, 10*time.Second, 20*time.Millisecond)
	f := failures(r, ReasonForbidden)
	time.Sleep(1500 * time.Millisecond) // three renewals with the kept token
	require.True(t, r.Status().OK, fmt.Sprint(r.Status()))
	require.Equal(t, f, failures(r, ReasonForbidden))
}

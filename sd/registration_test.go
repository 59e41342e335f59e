package sd

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestNewRegistrationValidation(t *testing.T) {
	cfg := DefaultRegistrationConfig()
	cfg.Service = "shoal"
	valid := RegistrationOptions{RegistrationConfig: cfg, ID: "n1", Port: 8080, GossipAddr: "127.0.0.1:7946"}
	tests := []struct {
		name    string
		mutate  func(*RegistrationOptions)
		wantErr string
	}{
		{"no service", func(o *RegistrationOptions) { o.Service = "" }, "consul service name is required"},
		{"no id", func(o *RegistrationOptions) { o.ID = "" }, "consul service id is required"},
		{"bad port", func(o *RegistrationOptions) { o.Port = 70000 }, "consul service port must be between 1 and 65535, got 70000"},
		{"bad gossip addr", func(o *RegistrationOptions) { o.GossipAddr = "nohost" }, `gossip address must be host:port, got "nohost"`},
		{"negative ttl", func(o *RegistrationOptions) { o.TTL = -time.Second }, "--consul.check-ttl must be at least 1s, got -1s"},
		{"tiny ttl", func(o *RegistrationOptions) { o.TTL = 2 * time.Nanosecond }, "--consul.check-ttl must be at least 1s, got 2ns"},
		{"no deregister", func(o *RegistrationOptions) { o.DeregisterCriticalServiceAfter = 0 }, "--consul.deregister-critical-after must be positive, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid
			tt.mutate(&opts)
			_, err := NewRegistration(&api.Client{}, opts, nil, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	r, err := NewRegistration(&api.Client{}, valid, nil, nil)
	require.NoError(t, err)
	require.Equal(t, DefaultTTL, r.opts.TTL)
	require.Equal(t, DefaultDeregisterCriticalServiceAfter, r.opts.DeregisterCriticalServiceAfter)
}

// agentAPI fakes the agent endpoints Registration uses: the first TTL update
// fails as if Consul had lost the check.
type agentAPI struct {
	mtx      sync.Mutex
	calls    []string
	reg      api.AgentServiceRegistration
	lostOnce bool
}

func (a *agentAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	switch {
	case r.URL.Path == "/v1/agent/service/register":
		_ = json.NewDecoder(r.Body).Decode(&a.reg)
		a.calls = append(a.calls, "register")
	case strings.HasPrefix(r.URL.Path, "/v1/agent/check/update/"):
		var body struct{ Status string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		a.calls = append(a.calls, "update "+strings.TrimPrefix(r.URL.Path, "/v1/agent/check/update/")+" "+body.Status)
		if !a.lostOnce {
			a.lostOnce = true
			http.Error(w, `Unknown check ID "service:n1"`, http.StatusNotFound)
		}
	default:
		http.NotFound(w, r)
	}
}

func (a *agentAPI) seen() []string {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	return append([]string(nil), a.calls...)
}

func TestRegistrationRegistersAgainWhenLost(t *testing.T) {
	fake := &agentAPI{}
	cfg := DefaultRegistrationConfig()
	cfg.Service, cfg.Tags, cfg.TTL = "shoal", []string{"a"}, time.Hour
	r, err := NewRegistration(fakeConsul(t, fake.ServeHTTP), RegistrationOptions{
		RegistrationConfig: cfg, ID: "n1", Address: "10.0.0.1", Port: 8080,
		GossipAddr: "10.0.0.1:7946", Version: "v1",
	}, nil, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() bool { return true }) }()
	require.Eventually(t, func() bool { return len(fake.seen()) == 4 }, 10*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.Equal(t, []string{"register", "update service:n1 passing", "register", "update service:n1 passing"}, fake.seen())
	require.Equal(t, "n1", fake.reg.ID)
	require.Equal(t, "shoal", fake.reg.Name)
	require.Equal(t, map[string]string{MetaGossipAddr: "10.0.0.1:7946", MetaVersion: "v1"}, fake.reg.Meta)
	require.Equal(t, "1h0m0s", fake.reg.Check.TTL)
	require.Equal(t, "1m0s", fake.reg.Check.DeregisterCriticalServiceAfter)
	require.Equal(t, api.HealthWarning, fake.reg.Check.Status, "warning (alive, not ready) until Run reports ready")
}

func TestRegistrationErrorsNameTheService(t *testing.T) {
	client := fakeConsul(t, func(w http.ResponseWriter, _ *http.Request) { fail(w) })
	cfg := DefaultRegistrationConfig()
	cfg.Service = "shoal"
	r, err := NewRegistration(client, RegistrationOptions{RegistrationConfig: cfg, ID: "n1", Port: 8080, GossipAddr: "h:1"}, nil, nil)
	require.NoError(t, err)
	require.ErrorContains(t, r.Register(context.Background()), `register service "shoal" as "n1"`)
	require.ErrorContains(t, r.Deregister(context.Background()), `deregister service "n1"`)
}

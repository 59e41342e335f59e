package sd

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestGossipAddr(t *testing.T) {
	tests := []struct {
		name  string
		entry *api.ServiceEntry
		want  string
	}{
		{"meta wins", &api.ServiceEntry{Service: &api.AgentService{Meta: map[string]string{MetaGossipAddr: "10.0.0.1:7946"}, Address: "10.0.0.1", Port: 8080}}, "10.0.0.1:7946"},
		{"service address and port", &api.ServiceEntry{Service: &api.AgentService{Address: "10.0.0.2", Port: 7946}}, "10.0.0.2:7946"},
		{"node address when service has none", &api.ServiceEntry{Node: &api.Node{Address: "10.0.0.3"}, Service: &api.AgentService{Port: 7946}}, "10.0.0.3:7946"},
		{"ipv6", &api.ServiceEntry{Service: &api.AgentService{Address: "::1", Port: 7946}}, "[::1]:7946"},
		{"no port", &api.ServiceEntry{Service: &api.AgentService{Address: "10.0.0.4"}}, ""},
		{"no service", &api.ServiceEntry{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, gossipAddr(tt.entry))
		})
	}
}

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name            string
		prev, got, want uint64
	}{
		{"first", 0, 7, 7},
		{"forward", 7, 9, 9},
		{"unchanged", 9, 9, 9},
		{"backwards resets", 9, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, nextIndex(tt.prev, tt.got))
		})
	}
}

// scriptedHealth answers /v1/health/service one scripted response per
// request, records each request's index, and blocks like a blocking query
// once the script is over.
type scriptedHealth struct {
	mtx     sync.Mutex
	script  []func(w http.ResponseWriter)
	indexes []string
}

func (s *scriptedHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mtx.Lock()
	s.indexes = append(s.indexes, r.URL.Query().Get("index"))
	var step func(http.ResponseWriter)
	if len(s.script) > 0 {
		step, s.script = s.script[0], s.script[1:]
	}
	s.mtx.Unlock()
	if step == nil {
		<-r.Context().Done()
		return
	}
	step(w)
}

func (s *scriptedHealth) seen() []string {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return append([]string(nil), s.indexes...)
}

func answer(index uint64, addrs ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		entries := []api.ServiceEntry{}
		for _, a := range addrs {
			entries = append(entries, api.ServiceEntry{Service: &api.AgentService{Meta: map[string]string{MetaGossipAddr: a}}})
		}
		w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
		_ = json.NewEncoder(w).Encode(entries)
	}
}

func fail(w http.ResponseWriter) { http.Error(w, "no leader", http.StatusInternalServerError) }

func TestWatchBacksOffAndResetsIndex(t *testing.T) {
	h := &scriptedHealth{script: []func(http.ResponseWriter){
		answer(3),
		fail,
		answer(10, "b:7946", "a:7946"),
		answer(10, "a:7946", "b:7946"), // same peers: no callback
		answer(5, "a:7946"),            // index went backwards: Consul restarted
		answer(6, "a:7946"),
	}}
	p, err := NewPeerProvider(fakeConsul(t, h.ServeHTTP), "shoal", nil)
	require.NoError(t, err)
	p.minBackoff, p.minQueryInterval = time.Millisecond, 0

	changes := make(chan []string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Watch(ctx, func(peers []string) { changes <- peers })
	}()

	require.Empty(t, <-changes)
	require.Equal(t, []string{"a:7946", "b:7946"}, <-changes)
	require.Equal(t, []string{"a:7946"}, <-changes)
	require.Eventually(t, func() bool { return len(h.seen()) == 7 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	require.Equal(t, []string{"", "3", "", "10", "10", "", "6"}, h.seen(),
		"an error or an index going backwards (5 < 10) resets the index to 0 (no index parameter)")
	require.Empty(t, changes)
}

func TestPeersError(t *testing.T) {
	p, err := NewPeerProvider(fakeConsul(t, func(w http.ResponseWriter, _ *http.Request) { fail(w) }), "shoal", nil)
	require.NoError(t, err)
	_, err = p.Peers(context.Background())
	require.ErrorContains(t, err, `query instances of "shoal"`)
	require.ErrorContains(t, err, "500")
}

func TestNewPeerProviderValidation(t *testing.T) {
	_, err := NewPeerProvider(nil, "shoal", nil)
	require.ErrorContains(t, err, "consul client is required")
	_, err = NewPeerProvider(&api.Client{}, "", nil)
	require.ErrorContains(t, err, "consul service name is required")
}

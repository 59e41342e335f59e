package sd

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeToken(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestOpenTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want, wantErr string
	}{
		{"token", "  s3cret\n", "s3cret", ""},
		{"empty", " \n", "", "is empty"},
		{"missing", "", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if tt.name != "missing" {
				writeToken(t, p, tt.content)
			}
			tok, err := OpenTokenFile(p, nil)
			require.Equal(t, err, ConsulConfig{TokenFile: p}.Validate(), "Validate says the same")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, "--consul.token-file")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, tok.Token())
		})
	}
}

// TestTokenFileReload: Reload and Run pick up a new token; a missing or
// empty file keeps the running one and says why; every request carries
// the running token.
func TestTokenFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	writeToken(t, p, "one")
	logs := &syncBuffer{}
	tok, err := OpenTokenFile(p, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)

	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("X-Consul-Token"))
	}))
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tok.RoundTripper(tr)}
	get := func() string {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set("X-Consul-Token", "from-the-caller")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, "from-the-caller", req.Header.Get("X-Consul-Token"), "the caller's request is not modified")
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	require.Equal(t, "one", get())

	writeToken(t, p, "two")
	require.NoError(t, tok.Reload())
	require.Equal(t, "two", get())

	writeToken(t, p, "")
	require.ErrorContains(t, tok.Reload(), "is empty")
	require.Equal(t, "two", tok.Token())
	require.NoError(t, os.Remove(p))
	require.ErrorContains(t, tok.Reload(), "no such file")
	require.Equal(t, "two", get())
	require.Contains(t, logs.String(), "consul token file not reloaded, keeping the running token")

	// Run follows the file without a Reload.
	tok.PollInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tok.Run(ctx) }()
	writeToken(t, p, "three")
	require.Eventually(t, func() bool { return tok.Token() == "three" }, 5*time.Second, 10*time.Millisecond)
	// A rename over the file (Kubernetes secrets), same size.
	tmp := p + ".new"
	writeToken(t, tmp, "four!")
	require.NoError(t, os.Rename(tmp, p))
	require.Eventually(t, func() bool { return tok.Token() == "four!" }, 5*time.Second, 10*time.Millisecond)
	n := bytes.Count([]byte(logs.String()), []byte("not reloaded"))
	writeToken(t, p, "")
	require.Eventually(t, func() bool { return bytes.Count([]byte(logs.String()), []byte("not reloaded")) == n+1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // several polls: the bad file is logged once
	require.Equal(t, n+1, bytes.Count([]byte(logs.String()), []byte("not reloaded")))
	require.Equal(t, "four!", tok.Token())
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, "four!", get())
}

package sd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TokenPollInterval is how often a TokenFile looks for a change of its
// file: a stat per second costs nothing, and a rotated token is used within
// a second.
const TokenPollInterval = time.Second

// TokenFile is a Consul ACL token read from a file that is re-read on
// Reload (SIGHUP, POST /-/reload) and when the file changes, so a token
// rotates without a restart. A file that is missing, unreadable or empty
// when re-read keeps the running token. Consul's own client reads its
// TokenFile once, at creation.
type TokenFile struct {
	path   string
	logger *slog.Logger
	token  atomic.Pointer[string]
	// PollInterval is how often Run stats the file; TokenPollInterval by
	// default. Set it before Run.
	PollInterval time.Duration

	mu   sync.Mutex  // serializes loads and guards seen
	seen os.FileInfo // the file as last loaded or tried
}

// OpenTokenFile reads the token in path (surrounding space trimmed). It
// fails when the file cannot be read or holds no token.
func OpenTokenFile(path string, logger *slog.Logger) (*TokenFile, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &TokenFile{path: path, logger: logger.With("component", "consul_token", "file", path), PollInterval: TokenPollInterval}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

// Token returns the running token. It is safe for concurrent use.
func (t *TokenFile) Token() string { return *t.token.Load() }

// Reload re-reads the file. On failure the running token stays, and the
// error says why.
func (t *TokenFile) Reload() error {
	err := t.load()
	if err != nil {
		t.logger.Error("consul token file not reloaded, keeping the running token", "err", err)
	}
	return err
}

func (t *TokenFile) load() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen, _ = os.Stat(t.path)
	tok, err := readToken(t.path)
	if err != nil {
		return err
	}
	old := t.token.Swap(&tok)
	if old != nil && *old != tok {
		t.logger.Info("consul token changed")
	}
	return nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--consul.token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--consul.token-file %s is empty", path)
	}
	return tok, nil
}

// Run re-reads the file whenever its size, modification time or identity
// (a rename over it, as Kubernetes does with secrets) changes, until ctx is
// cancelled; then it returns nil. A failed read keeps the running token and
// is logged once per change of the file.
func (t *TokenFile) Run(ctx context.Context) error {
	tick := time.NewTicker(t.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if t.changed() {
			_ = t.Reload()
		}
	}
}

// changed reports whether the file differs from the one last loaded.
func (t *TokenFile) changed() bool {
	fi, err := os.Stat(t.path)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		return t.seen != nil // it was there: report the loss once
	case t.seen == nil:
		return true
	default:
		return !os.SameFile(fi, t.seen) || fi.Size() != t.seen.Size() || !fi.ModTime().Equal(t.seen.ModTime())
	}
}

// RoundTripper returns next with every request carrying the running token
// in X-Consul-Token, replacing any other.
func (t *TokenFile) RoundTripper(next http.RoundTripper) http.RoundTripper {
	return tokenTransport{next: next, token: t}
}

type tokenTransport struct {
	next  http.RoundTripper
	token *TokenFile
}

func (tt tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Consul-Token", tt.token.Token())
	return tt.next.RoundTrip(req)
}

package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no url here", "no url here"},
		{"mail me@example.com", "mail me@example.com"},
		{"http://host:9090/api/v1/write", "http://host:9090/api/v1/write"},
		{"http://user:secret@host:9090/api/v1/write", "http://user:xxxxx@host:9090/api/v1/write"},
		{"https://user:secret@host", "https://user:xxxxx@host"},
		{"http://user@host/x", "http://user@host/x"},
		{"http://:secret@host/x", "http://:xxxxx@host/x"},
		{"http://user:p%40ss@host/x", "http://user:xxxxx@host/x"},
		{"http://user:p@ss@host/x", "http://user:xxxxx@host/x"},
		{"http://host/x?a=b@c", "http://host/x?a=b@c"},
		{`Post "http://u:pw@h:1/w": EOF`, `Post "http://u:xxxxx@h:1/w": EOF`},
		{"a http://u:p1@h1/ b https://v:p2@h2 c", "a http://u:xxxxx@h1/ b https://v:xxxxx@h2 c"},
		{"url=http://u:p@h", "url=http://u:xxxxx@h"},
		{"[http://u:p@h1 http://h2]", "[http://u:xxxxx@h1 http://h2]"},
		{"://u:p@h", "://u:xxxxx@h"},
		{`parse "http://u:p%40127.0.0.1:1/metrics": invalid port`, `parse "http://u:xxxxx%40127.0.0.1:1/metrics": invalid port`},
		{"http://h/x?q=a%40b", "http://h/x?q=a%40b"},
		{`invalid port ":pw%40127.0.0.1:1" after host`, `invalid port ":xxxxx%40127.0.0.1:1" after host`},
		{`parse "http://u:pw%40h:1/m": invalid port ":pw%40h:1" after host`, `parse "http://u:xxxxx%40h:1/m": invalid port ":xxxxx%40h:1" after host`},
		{"instance=u:pw%40h:1", "instance=u:xxxxx%40h:1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := String(tt.in)
			require.Equal(t, tt.want, got)
			if tt.in == tt.want {
				require.Equal(t, String(got), got)
			}
		})
	}
}

func TestStringAllocatesNothingWithoutAURL(t *testing.T) {
	s := strings.Repeat("component=remote msg=done ", 10)
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = String(s) }))
	u := "see http://user@host/x and me@example.com"
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = String(u) }))
}

func TestQueries(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h:9100/metrics", "http://h:9100/metrics"},
		{"what? no url", "what? no url"},
		{"http://h:9100/metrics?token=abc", "http://h:9100/metrics?token=xxxxx"},
		{"http://h/m?a=1&b=2&c&a=3", "http://h/m?a=xxxxx&b=xxxxx&c&a=xxxxx"},
		{"http://h/m?module=http_2xx&target=http%3A%2F%2Fx#frag", "http://h/m?module=xxxxx&target=xxxxx#frag"},
		{"http://u:p@h/m?x=1", "http://u:xxxxx@h/m?x=xxxxx"},
		{"http://h/m?", "http://h/m?"},
		{`Get "http://h/m?token=abc": context deadline exceeded`, `Get "http://h/m?token=xxxxx": context deadline exceeded`},
		{"http://a/?x=1 and https://b/p?y=2&z=3", "http://a/?x=xxxxx and https://b/p?y=xxxxx&z=xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, Queries(tt.in))
		})
	}
}

func TestAddress(t *testing.T) {
	require.Equal(t, "h:9100", Address("h:9100"))
	require.Equal(t, "u:xxxxx@h:9100", Address("u:pw@h:9100"))
	require.Equal(t, "u@h:9100", Address("u@h:9100"))
	require.Equal(t, "http://u:xxxxx@h", Address("http://u:pw@h"))
}

type stringer string

func (s stringer) String() string { return string(s) }

type valuer struct{ v string }

func (v valuer) LogValue() slog.Value { return slog.StringValue(v.v) }

func TestHandler(t *testing.T) {
	u, err := url.Parse("http://alice:hunter2@mimir:9009/api/v1/push")
	require.NoError(t, err)
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want []string // substrings of the output
	}{
		{"message", func(l *slog.Logger) { l.Info("posting to http://alice:hunter2@mimir/") }, []string{"alice:xxxxx@mimir"}},
		{"string", func(l *slog.Logger) { l.Info("start", "url", "http://alice:hunter2@mimir/") }, []string{"url=http://alice:xxxxx@mimir/"}},
		{"*url.URL", func(l *slog.Logger) { l.Info("start", "url", u) }, []string{"alice:xxxxx@mimir:9009"}},
		{"url.URL", func(l *slog.Logger) { l.Info("start", "url", *u) }, []string{"alice:xxxxx@mimir:9009"}},
		{"error", func(l *slog.Logger) {
			l.Warn("send failed", "err", fmt.Errorf("remote server %s returned 401: %w", u, errors.New("unauthorized")))
		}, []string{"alice:xxxxx@mimir:9009"}},
		{"stringer", func(l *slog.Logger) { l.Info("x", "cfg", stringer("url: http://alice:hunter2@m/")) }, []string{"alice:xxxxx@m"}},
		{"slice", func(l *slog.Logger) { l.Info("x", "urls", []string{"http://h", "http://alice:hunter2@m"}) }, []string{"alice:xxxxx@m"}},
		{"group", func(l *slog.Logger) {
			l.Info("x", slog.Group("rw", "name", "a", "url", "http://alice:hunter2@m"))
		}, []string{"rw.name=a", "rw.url=http://alice:xxxxx@m"}},
		{"log valuer", func(l *slog.Logger) { l.Info("x", "v", valuer{"http://alice:hunter2@m"}) }, []string{"v=http://alice:xxxxx@m"}},
		{"with", func(l *slog.Logger) {
			l.With("url", "http://alice:hunter2@m").WithGroup("g").Info("x", "k", "http://alice:hunter2@n")
		}, []string{"url=http://alice:xxxxx@m", "g.k=http://alice:xxxxx@n"}},
		{"clean record", func(l *slog.Logger) { l.Info("fine", "n", 3, "url", "http://m/x", "err", errors.New("eof")) }, []string{`msg=fine n=3 url=http://m/x err=eof`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(NewHandler(slog.NewTextHandler(&buf, nil)))
			tt.log(l)
			out := buf.String()
			require.NotContains(t, out, "hunter2")
			for _, w := range tt.want {
				require.Contains(t, out, w)
			}
		})
	}
}

func TestHandlerJSONKeepsTypes(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	l.Info("x", "n", 3, "ok", true, "url", "http://a:b@h")
	require.Contains(t, buf.String(), `"n":3,"ok":true,"url":"http://a:xxxxx@h"`)
}

func TestLoggerWrapsOnce(t *testing.T) {
	l := Logger(slog.New(slog.DiscardHandler))
	require.IsType(t, &Handler{}, l.Handler())
	require.Same(t, l, Logger(l))
	require.Same(t, l.Handler(), NewHandler(l.Handler()))
	require.Nil(t, Logger(nil))
}

// BenchmarkHandler measures what the wrapper adds to a typical Prometheus
// log line (a component, strings, a number, an error) without a URL to
// redact, and with one.
func BenchmarkHandler(b *testing.B) {
	line := func(l *slog.Logger, url string) {
		l.Warn("Failed to send batch, retrying", "component", "remote", "remote_name", "3a8f2c", "url", url, "count", 2000, "err", errors.New("context deadline exceeded"))
	}
	for _, bc := range []struct {
		name string
		wrap bool
		url  string
	}{
		{"plain", false, "http://mimir:9009/api/v1/push"},
		{"redact/clean", true, "http://mimir:9009/api/v1/push"},
		{"redact/password", true, "http://alice:hunter2@mimir:9009/api/v1/push"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h slog.Handler = slog.NewTextHandler(discard{}, nil)
			if bc.wrap {
				h = NewHandler(h)
			}
			l := slog.New(h).With("component", "remote")
			b.ReportAllocs()
			for b.Loop() {
				line(l, bc.url)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Package redact keeps secrets out of what shoal prints and serves: the
// passwords of URLs in log lines (its own and those of the Prometheus
// packages it embeds) and the query values of scrape URLs in its API and
// status page.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret, as Go's url.URL.Redacted does.
const Mask = "xxxxx"

// String returns s with the password of every URL with userinfo in it
// ("scheme://user:password@host") replaced by Mask; the user name is kept, as
// url.URL.Redacted keeps it. When there is nothing to redact it returns s
// itself without allocating, after one scan for '@' (and one for "%40"), so
// that it is cheap on the log path.
//
// A '@' escaped as "%40" also ends the userinfo: a target address
// "user:pass@host" becomes the URL "http://user:pass%40host/metrics" in
// Prometheus' scrape pools, which no valid host contains.
func String(s string) string {
	if strings.IndexByte(s, '@') < 0 && !strings.Contains(s, "%40") {
		return s
	}
	var b strings.Builder
	last, pos := 0, 0
	for {
		i := strings.Index(s[pos:], "://")
		if i < 0 {
			break
		}
		start := pos + i + len("://")
		end := start + authorityLen(s[start:])
		pos = end
		at := strings.LastIndexByte(s[start:end], '@')
		if at < 0 {
			at = strings.LastIndex(s[start:end], "%40")
		}
		if at < 0 {
			continue
		}
		colon := strings.IndexByte(s[start:start+at], ':')
		if colon < 0 {
			continue // a user name alone, kept as url.URL.Redacted does
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last : start+colon+1])
		b.WriteString(Mask)
		last = start + at
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// authorityLen is the length of the URL authority (userinfo@host:port) at
// the start of s: up to the path, query or fragment, or anything that cannot
// be in a URL and so ends it in running text (space, quote, bracket).
func authorityLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', '?', '#', ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>', '\\', '{', '}', '|', '^':
			return i
		}
	}
	return len(s)
}

// URL returns u's string with its password masked (url.URL.Redacted), ""
// for nil.
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Redacted()
}

// Query returns rawURL with the value of every query parameter replaced by
// Mask (the names are kept), and its password masked. Scrape URLs carry
// their config's params (?token=...) in the query. rawURL is returned as is
// when it has no query; one that does not parse is masked after its '?'.
func Query(rawURL string) string {
	q := strings.IndexByte(rawURL, '?')
	if q < 0 {
		return String(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return String(rawURL[:q+1]) + Mask
	}
	u.RawQuery = QueryValues(u.RawQuery)
	return u.Redacted()
}

// QueryValues masks the value of every parameter of the raw query rawQuery,
// in its order: "a=1&b=2&c" is "a=xxxxx&b=xxxxx&c".
func QueryValues(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	parts := strings.Split(rawQuery, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok {
			parts[i] = name + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

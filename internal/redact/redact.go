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
	hasAt, hasEscaped := strings.IndexByte(s, '@') >= 0, strings.Contains(s, "%40")
	if !hasAt && !hasEscaped {
		return s
	}
	s = userinfo(s)
	if hasEscaped {
		s = escapedUserinfo(s)
	}
	return s
}

// userinfo masks the passwords of the "scheme://user:password@" in s.
func userinfo(s string) string {
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

// escapedUserinfo masks "user:password%40host" outside a URL too: Go's
// url.Parse quotes the bad port of such a scrape URL in its error (invalid
// port ":password%40host:9100"). In each word (up to a space, quote, '/',
// '?', '&' or '=') holding "%40", what lies between the word's first ':'
// and its last "%40" is masked; a query value such as "a:b%40c" is masked
// too, which costs a log line some detail, not a secret.
func escapedUserinfo(s string) string {
	var b strings.Builder
	last, pos := 0, 0
	for {
		i := strings.Index(s[pos:], "%40")
		if i < 0 {
			break
		}
		at := pos + i
		start := at
		for start > 0 && !wordEnd(s[start-1]) {
			start--
		}
		end := at + len("%40")
		for end < len(s) && !wordEnd(s[end]) {
			end++
		}
		pos = end
		word := s[start:end]
		colon := strings.IndexByte(word, ':')
		esc := strings.LastIndex(word, "%40")
		if colon < 0 || colon > esc || start < last || word[colon+1:esc] == Mask {
			continue
		}
		b.WriteString(s[last : start+colon+1])
		b.WriteString(Mask)
		last = start + esc
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func wordEnd(c byte) bool {
	switch c {
	case '/', '?', '&', '=', '#', ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>', '\\', '{', '}', '|', '^':
		return true
	}
	return false
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

// Address masks the password of a target address "user:password@host:port"
// (scrape targets are addresses, not URLs); other values go through String.
func Address(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || strings.Contains(s[:at], "://") {
		return String(s)
	}
	colon := strings.IndexByte(s[:at], ':')
	if colon < 0 {
		return s
	}
	return s[:colon+1] + Mask + s[at:]
}

// Queries masks the value of every query parameter of every URL in s (the
// names are kept: "http://h/m?token=abc" is "http://h/m?token=xxxxx"), as
// well as URL passwords (String). Scrape URLs carry their config's params
// (?token=...) in the query, and Prometheus' scrape errors quote the URL. s
// is returned as is when it has no "://" followed by a '?'.
func Queries(s string) string {
	s = String(s)
	if strings.IndexByte(s, '?') < 0 || !strings.Contains(s, "://") {
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
		end := start + urlLen(s[start:])
		pos = end
		q := strings.IndexByte(s[start:end], '?')
		if q < 0 {
			continue
		}
		qs := start + q + 1
		qe := end
		if h := strings.IndexByte(s[qs:end], '#'); h >= 0 {
			qe = qs + h
		}
		b.WriteString(s[last:qs])
		b.WriteString(QueryValues(s[qs:qe]))
		last = qe
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// urlLen is the length of the rest of a URL at the start of s in running
// text: up to a space, quote or bracket.
func urlLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>', '\\', '{', '}', '|', '^':
			return i
		}
	}
	return len(s)
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

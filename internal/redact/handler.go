package redact

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
)

// Handler is a slog.Handler that masks the passwords of URLs (String) in
// what it hands to the next handler: the message, string values, *url.URL
// and url.URL values, errors and fmt.Stringers (by their text), other values
// by their %+v text, in groups too. Attributes added with WithAttrs are
// redacted once, when added. A record with nothing to redact is passed on
// unchanged, after one scan for '@' per string; only a record that needs it
// is copied.
//
// Wrap every logger's handler with it: Prometheus' remote write, scrape and
// discovery packages log their URLs (the remote-write URL, with its
// password, at every start of its queue).
type Handler struct {
	next slog.Handler
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler wraps next; a *Handler is returned as is.
func NewHandler(next slog.Handler) *Handler {
	if h, ok := next.(*Handler); ok {
		return h
	}
	return &Handler{next: next}
}

// Logger returns a logger whose handler is l's wrapped in a Handler; l when
// it is wrapped already, nil for nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// Enabled is the next handler's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r on, redacted if needed.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	dirty := String(r.Message) != r.Message
	if !dirty {
		r.Attrs(func(a slog.Attr) bool {
			_, dirty = redactValue(a.Value)
			return !dirty
		})
	}
	if !dirty {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs redacts attrs once and hands them to the next handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(red)}
}

// WithGroup is the next handler's, wrapped.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	if v, changed := redactValue(a.Value); changed {
		return slog.Attr{Key: a.Key, Value: v}
	}
	return a
}

// redactValue returns v redacted and whether that changed it. Only string-
// like values can carry a URL; numbers, times and durations are returned at
// once.
func redactValue(v slog.Value) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if r := String(s); r != s {
			return slog.StringValue(r), true
		}
		return v, false
	case slog.KindGroup:
		attrs := v.Group()
		var out []slog.Attr
		for i, a := range attrs {
			nv, changed := redactValue(a.Value)
			if !changed {
				continue
			}
			if out == nil {
				out = append(make([]slog.Attr, 0, len(attrs)), attrs...)
			}
			out[i] = slog.Attr{Key: a.Key, Value: nv}
		}
		if out == nil {
			return v, false
		}
		return slog.GroupValue(out...), true
	case slog.KindLogValuer:
		// Resolved here and, unless it needs redacting, again by the next
		// handler: LogValuers are rare on shoal's and Prometheus' log paths.
		if nv, changed := redactValue(v.Resolve()); changed {
			return nv, true
		}
		return v, false
	case slog.KindAny:
		return redactAny(v)
	default:
		return v, false
	}
}

func redactAny(v slog.Value) (slog.Value, bool) {
	var s string
	switch x := v.Any().(type) {
	case *url.URL:
		if x == nil || x.User == nil {
			return v, false
		}
		if _, ok := x.User.Password(); !ok {
			return v, false
		}
		return slog.StringValue(x.Redacted()), true
	case url.URL:
		return redactAny(slog.AnyValue(&x))
	case error:
		s = x.Error()
	case fmt.Stringer:
		s = x.String()
	case []byte:
		s = string(x)
	default:
		// Slices, maps, structs: their text is what a text handler prints.
		s = fmt.Sprintf("%+v", x)
	}
	if r := String(s); r != s {
		return slog.StringValue(r), true
	}
	return v, false
}

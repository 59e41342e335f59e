package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// shoalPrefix starts the function names of shoal's own packages in a
// profile; cmd/shoal's are "main.".
const shoalPrefix = "github.com/shoal-dev/shoal/"

// IsShoal reports whether a profile's function name is shoal's own code.
func IsShoal(fn string) bool {
	return strings.HasPrefix(fn, shoalPrefix) || strings.HasPrefix(fn, "main.")
}

// TopEntry is one line of `go tool pprof -top`.
type TopEntry struct {
	Flat, FlatPct, SumPct, Cum, CumPct string
	Func                               string
}

// Top is the output of `go tool pprof -top`: the summary lines (type,
// duration, totals) and the table.
type Top struct {
	Summary []string
	Entries []TopEntry
}

// ParseTop parses the output of `go tool pprof -top`.
func ParseTop(out string) (Top, error) {
	var t Top
	inTable := false
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		f := strings.Fields(line)
		if !inTable {
			if len(f) == 5 && f[0] == "flat" && f[1] == "flat%" && f[3] == "cum" {
				inTable = true
				continue
			}
			if len(f) > 0 && (f[0] == "Type:" || f[0] == "Duration:" || f[0] == "Showing") {
				t.Summary = append(t.Summary, strings.TrimSpace(line))
			}
			continue
		}
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return Top{}, fmt.Errorf("parse pprof top line %q: want 5 figures and a function", line)
		}
		// The function is the rest of the line after the fifth figure; it
		// may hold spaces (" (inline)").
		rest := line
		for range 5 {
			rest = strings.TrimLeft(rest, " \t")
			rest = rest[strings.IndexAny(rest, " \t"):]
		}
		t.Entries = append(t.Entries, TopEntry{
			Flat: f[0], FlatPct: f[1], SumPct: f[2], Cum: f[3], CumPct: f[4],
			Func: strings.TrimSpace(rest),
		})
	}
	if !inTable {
		return Top{}, errors.New("parse pprof top: no table header (flat flat% sum% cum cum%)")
	}
	return t, nil
}

// Format writes the table with a '*' before shoal's own functions.
func (t Top) Format(w io.Writer, title string) {
	fmt.Fprintf(w, "%s\n", title)
	for _, s := range t.Summary {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "  %1s %10s %7s %7s %10s %7s  %s\n", "", "flat", "flat%", "sum%", "cum", "cum%", "function (* = shoal)")
	for _, e := range t.Entries {
		mark := ""
		if IsShoal(e.Func) {
			mark = "*"
		}
		fmt.Fprintf(w, "  %1s %10s %7s %7s %10s %7s  %s\n", mark, e.Flat, e.FlatPct, e.SumPct, e.Cum, e.CumPct, e.Func)
	}
}

// PprofTop runs `go tool pprof -top` on a profile file with extra options
// (e.g. "-cum", "-nodecount=15", "-show=..."), and parses the output.
func PprofTop(ctx context.Context, goBin, file string, opts ...string) (Top, error) {
	args := append([]string{"tool", "pprof", "-top"}, opts...)
	cmd := exec.CommandContext(ctx, goBin, append(args, file)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Top{}, fmt.Errorf("go tool pprof -top %s: %w: %s", file, err, strings.TrimSpace(stderr.String()))
	}
	return ParseTop(stdout.String())
}

package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogWriterLevels(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234", "DEBUG", "Stream connection from=127.0.0.1:1234"},
		{"[INFO] memberlist: Marking x as failed", "INFO", "Marking x as failed"},
		{"[WARN] memberlist: Was able to connect to x over TCP", "WARN", "Was able to connect"},
		{"[ERR] memberlist: Conflicting address for x", "ERROR", "Conflicting address for x"},
		{"no prefix at all", "INFO", "no prefix at all"},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			l.Println(tc.line)
			out := buf.String()
			require.Contains(t, out, "level="+tc.level)
			require.Contains(t, out, tc.msg)
			require.False(t, strings.Contains(out, "memberlist: "), out)
		})
	}
}

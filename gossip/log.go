package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logWriter routes memberlist's standard-library log lines through slog,
// mapping its "[DEBUG]", "[INFO]", "[WARN]" and "[ERR]" prefixes to levels.
type logWriter struct {
	logger *slog.Logger
}

// newStdLogger returns a *log.Logger for memberlist.Config.Logger.
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(&logWriter{logger: logger}, "", 0)
}

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if bytes.HasPrefix(line, lp.prefix) {
			level = lp.level
			line = bytes.TrimSpace(line[len(lp.prefix):])
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	if w.logger.Enabled(context.Background(), level) {
		w.logger.Log(context.Background(), level, string(line))
	}
	return n, nil
}

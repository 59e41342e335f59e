package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRestartMarker(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	require.True(t, takeRestartMarker(dir, "a", logger).IsZero(), "no marker")

	until := time.Now().Add(time.Minute).Round(0)
	require.NoError(t, writeRestartMarker(dir, "a", until))
	require.True(t, takeRestartMarker(dir, "a", logger).Equal(until))
	require.NoFileExists(t, filepath.Join(dir, restartMarkerFile), "a marker is used once")

	require.NoError(t, writeRestartMarker(dir, "a", until))
	require.True(t, takeRestartMarker(dir, "b", logger).IsZero(), "another node's marker")

	require.NoError(t, writeRestartMarker(dir, "a", time.Now().Add(-time.Second)))
	require.True(t, takeRestartMarker(dir, "a", logger).IsZero(), "an ended grace")

	require.NoError(t, os.WriteFile(filepath.Join(dir, restartMarkerFile), []byte("{"), 0o644))
	require.True(t, takeRestartMarker(dir, "a", logger).IsZero(), "a corrupt marker is ignored")
	require.NoFileExists(t, filepath.Join(dir, restartMarkerFile))
}

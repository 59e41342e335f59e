package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// restartMarkerFile, in the storage directory, records that the agent
// stopped with a restart grace: its peers hold its targets for it until the
// time it announced. The next start with the same node name reads it and
// takes its targets back at once instead of after the handoff lead.
const restartMarkerFile = "shoal-restart.json"

type restartMarker struct {
	Node  string    `json:"node"`
	Until time.Time `json:"until"`
}

// writeRestartMarker records a restart grace that ends at until.
func writeRestartMarker(dir, node string, until time.Time) error {
	b, err := json.Marshal(restartMarker{Node: node, Until: until})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, restartMarkerFile), b); err != nil {
		return fmt.Errorf("write restart marker: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with b so that a crash at any instant
// leaves either the old file or the new one: write a temporary file, fsync
// it, rename it over path, fsync the directory.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// takeRestartMarker reads and removes the restart marker and returns the
// end of the grace if it was left by this node name and has not ended;
// otherwise the zero time. A marker that cannot be read is logged and
// ignored: the agent then rejoins with the normal handoff lead.
func takeRestartMarker(dir, node string, logger *slog.Logger) time.Time {
	path := filepath.Join(dir, restartMarkerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}
	}
	defer func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Warn("cannot remove the restart marker", "path", path, "err", err)
		}
	}()
	if err != nil {
		logger.Warn("cannot read the restart marker, rejoining with the handoff lead", "path", path, "err", err)
		return time.Time{}
	}
	var m restartMarker
	if err := json.Unmarshal(b, &m); err != nil {
		logger.Warn("cannot parse the restart marker, rejoining with the handoff lead", "path", path, "err", err)
		return time.Time{}
	}
	switch {
	case m.Node != node:
		logger.Info("restart marker is another node's, ignoring it", "marker_node", m.Node, "node", node)
		return time.Time{}
	case !m.Until.After(time.Now()):
		logger.Info("restart grace has ended, peers have taken this agent's targets; rejoining with the handoff lead", "ended", m.Until)
		return time.Time{}
	}
	return m.Until
}

package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage"

	"github.com/shoal-dev/shoal/delivery"
	"github.com/shoal-dev/shoal/internal/flagext"
)

// Storage is the durable delivery queue (package delivery): every scrape
// commit is written to an on-disk queue per remote_write endpoint and sent
// in order from where the endpoint last acknowledged, across restarts.
type Storage struct {
	d *delivery.Storage
	c StorageConfig

	closeOnce sync.Once
	closeErr  error
}

// StorageConfig is where the queue lives, how big it may grow and how long
// remote write flushes on stop.
type StorageConfig struct {
	// Path is the storage directory.
	Path string
	// MaxSize bounds each endpoint's queue in bytes; the oldest unsent
	// data is dropped first, counted. 0: unlimited.
	MaxSize units.Base2Bytes
	// FlushDeadline bounds how long remote write may take to send what is
	// queued when the agent stops; the rest is sent after the next start.
	FlushDeadline time.Duration
	// HandoffWait bounds how long the sender waits for the previous owner
	// of a taken-over target, while that agent makes no progress, before
	// sending this agent's newer samples of it; 0 disables the wait.
	HandoffWait time.Duration
}

// DefaultHandoffWait is how long a sender waits for a previous owner that
// makes no progress (crashed, unreachable). Outages and leaves do not count
// against it (a failing or leaving peer is waited for or remembered); what
// is left are crashes, where it delays the survivors' delivery, and
// partitions, where a long hold releases the taken-over targets' samples
// after the other side's newer ones once the network heals: short.
const DefaultHandoffWait = 5 * time.Second

// DefaultMaxSize bounds the queue so a long outage cannot fill a
// container's disk; at about 5 bytes per queued sample (compressed) it holds
// hours of a typical agent's scrapes.
const DefaultMaxSize = 2 << 30

// RegisterFlags declares --storage.*.
func (c *StorageConfig) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "storage.path", "Directory of the delivery queue that keeps scraped samples until remote write has them.", &c.Path)
	flagext.Bytes(app, "storage.max-size", "Largest size of each remote_write endpoint's queue on disk (e.g. 512MB, 4GB; 0 = unlimited). When full, the oldest unsent samples are dropped and counted in shoal_delivery_samples_dropped_total.", &c.MaxSize)
	flagext.Duration(app, "storage.remote.flush-deadline", "How long to keep sending queued samples on shutdown; what is left is sent after the next start.", &c.FlushDeadline)
	flagext.Duration(app, "storage.remote.handoff-wait", "When this agent takes a target over, its first samples of it are sent only after the previous owner has delivered its older ones (a receiver without an out-of-order window refuses them otherwise). How long to wait for a previous owner that makes no progress (crashed, unreachable) before sending anyway; 0 = do not wait.", &c.HandoffWait)
}

// Validate checks the settings; messages name the flag.
func (c StorageConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("--storage.path must not be empty")
	case c.FlushDeadline < 0:
		return fmt.Errorf("--storage.remote.flush-deadline must not be negative, got %s", c.FlushDeadline)
	case c.HandoffWait < 0 || c.HandoffWait > time.Hour:
		return fmt.Errorf("--storage.remote.handoff-wait must be between 0 (do not wait) and 1h, got %s", c.HandoffWait)
	case c.MaxSize < 0 || c.MaxSize != 0 && c.MaxSize < 32<<20:
		return fmt.Errorf("--storage.max-size must be 0 (unlimited) or at least 32MiB, got %s", c.MaxSize)
	}
	return nil
}

// OpenStorage opens (or resumes) the delivery queue in c.Path and starts
// remote write for cfg's remote_write section; metrics go to reg.
// preds, when not nil, answers for peers in handoff holds.
func OpenStorage(logger *slog.Logger, reg prometheus.Registerer, c StorageConfig, cfg *config.Config, preds delivery.Predecessors) (*Storage, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d, err := delivery.Open(logger.With("component", "delivery"), reg, delivery.Options{Dir: c.Path, MaxBytes: uint64(c.MaxSize), Predecessors: preds, HandoffWait: c.HandoffWait})
	if err != nil {
		return nil, fmt.Errorf("open storage in %s: %w", c.Path, err)
	}
	s := &Storage{d: d, c: c}
	if cfg != nil {
		if err := s.ApplyConfig(cfg); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// ApplyConfig applies remote_write and global.external_labels.
func (s *Storage) ApplyConfig(cfg *config.Config) error {
	if err := s.d.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply remote write config: %w", err)
	}
	return nil
}

// Appendable is what the scrape manager appends to.
func (s *Storage) Appendable() storage.AppendableV2 { return s.d }

// Health is nil while scraped samples can be stored.
func (s *Storage) Health() error { return s.d.Health() }

// Close sends what is queued for at most the flush deadline and closes the
// queue; what is left stays for the next start. Later calls return the
// first result.
func (s *Storage) Close() error {
	s.closeOnce.Do(func() {
		if err := s.d.Close(s.c.FlushDeadline); err != nil {
			s.closeErr = fmt.Errorf("close storage: %w", err)
		}
	})
	return s.closeErr
}

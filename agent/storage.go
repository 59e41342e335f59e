package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/agent"

	"github.com/shoal-dev/shoal/internal/flagext"
)

// This file holds every call into Prometheus' agent WAL and remote storage:
// their signatures move between releases. It is wired as cmd/prometheus does
// with --agent: samples go to the WAL, and remote write tails the WAL.

// Storage is the agent-mode WAL with remote write reading from it.
type Storage struct {
	logger  *slog.Logger
	db      *agent.DB
	remote  *remote.Storage
	fanout  storage.Storage
	scraper *readyScraper

	closeOnce sync.Once
	closeErr  error
}

// StorageConfig is where the WAL lives and how long remote write flushes.
type StorageConfig struct {
	// Path is the WAL directory.
	Path string
	// FlushDeadline bounds how long remote write may take to send what is
	// queued when the agent stops.
	FlushDeadline time.Duration
}

// RegisterFlags declares --storage.*.
func (c *StorageConfig) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "storage.path", "Directory of the write-ahead log that buffers samples for remote write.", &c.Path)
	flagext.Duration(app, "storage.remote.flush-deadline", "How long to wait flushing samples to remote write on shutdown.", &c.FlushDeadline)
}

// Validate checks the settings; messages name the flag.
func (c StorageConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("--storage.path must not be empty")
	case c.FlushDeadline < 0:
		return fmt.Errorf("--storage.remote.flush-deadline must not be negative, got %s", c.FlushDeadline)
	}
	return nil
}

// OpenStorage opens (or replays) the WAL in c.Path and starts remote write
// for cfg's remote_write section. Remote-write metrics
// (prometheus_remote_storage_*) and WAL metrics go to reg.
func OpenStorage(logger *slog.Logger, reg prometheus.Registerer, c StorageConfig, cfg *config.Config) (*Storage, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dir, flushDeadline := c.Path, c.FlushDeadline
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Storage{logger: logger.With("component", "storage"), scraper: &readyScraper{}}

	// The start-time callback serves remote read, which agent mode refuses.
	startTime := func() (int64, error) { return s.db.StartTime() }
	s.remote = remote.NewStorage(logger.With("component", "remote"), reg, startTime, dir, flushDeadline, s.scraper, false)

	db, err := agent.Open(logger.With("component", "wal"), reg, s.remote, dir, agent.DefaultOptions())
	if err != nil {
		_ = s.remote.Close()
		return nil, fmt.Errorf("open agent wal in %s: %w", dir, err)
	}
	// Wakes remote write when the WAL is written, instead of on its timer.
	db.SetWriteNotified(s.remote)
	s.db = db
	s.fanout = storage.NewFanout(logger, db, s.remote)

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
	if err := s.remote.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply remote write config: %w", err)
	}
	return nil
}

// Appendable is what the scrape manager appends to. Prometheus passes the
// same fanout (WAL first, then remote write's timestamp tracker) to its
// scrape manager's AppendableV2 slot.
func (s *Storage) Appendable() storage.AppendableV2 {
	return s.fanout
}

// SetScrapeManager hands remote write the scrape manager, whose targets'
// metadata it sends when remote_write.metadata_config.send is on (the
// default). Until it is set no metadata is sent. scrape.Manager implements
// remote.ReadyScrapeManager.
func (s *Storage) SetScrapeManager(m remote.ReadyScrapeManager) {
	s.scraper.set(m)
}

// Close closes the WAL and then flushes remote-write queues for at most the
// flush deadline. Call it after scraping has stopped. Later calls return the
// first result.
func (s *Storage) Close() error {
	s.closeOnce.Do(func() {
		if err := s.fanout.Close(); err != nil {
			s.closeErr = fmt.Errorf("close storage: %w", err)
		}
	})
	return s.closeErr
}

// readyScraper lets remote write ask for the scrape manager before it exists,
// as cmd/prometheus's readyScrapeManager does.
type readyScraper struct {
	mtx sync.RWMutex
	m   remote.ReadyScrapeManager
}

var _ remote.ReadyScrapeManager = (*readyScraper)(nil)

// errScrapeNotReady tells remote write's metadata watcher to try later.
var errScrapeNotReady = errors.New("scrape manager not ready")

func (r *readyScraper) set(m remote.ReadyScrapeManager) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	r.m = m
}

func (r *readyScraper) Get() (*promscrape.Manager, error) {
	r.mtx.RLock()
	defer r.mtx.RUnlock()
	if r.m == nil {
		return nil, errScrapeNotReady
	}
	return r.m.Get()
}

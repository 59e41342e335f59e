package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"
)

func appendSample(t *testing.T, s *Storage, ls labels.Labels, ts int64, v float64) {
	t.Helper()
	app := s.Appendable().AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, ts, v, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

func TestStorageOpenAppendClose(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := OpenStorage(nil, reg, StorageConfig{Path: dir, FlushDeadline: time.Second}, nil, nil)
	require.NoError(t, err)
	appendSample(t, s, labels.FromStrings("__name__", "up", "job", "a"), time.Now().UnixMilli(), 1)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "close is idempotent")

	// The queue reopens; the directory lock was released.
	s, err = OpenStorage(nil, prometheus.NewRegistry(), StorageConfig{Path: dir, FlushDeadline: time.Second}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestOpenStorageValidation(t *testing.T) {
	_, err := OpenStorage(nil, prometheus.NewRegistry(), StorageConfig{Path: "", FlushDeadline: 0}, nil, nil)
	require.ErrorContains(t, err, "--storage.path must not be empty")
	_, err = OpenStorage(nil, prometheus.NewRegistry(), StorageConfig{Path: t.TempDir(), FlushDeadline: -time.Second}, nil, nil)
	require.ErrorContains(t, err, "--storage.remote.flush-deadline must not be negative, got -1s")
}

// receiver is a remote-write 1.0 endpoint recording sample values by metric.
type receiver struct {
	mtx     sync.Mutex
	samples map[string][]float64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	wr, err := remote.DecodeWriteRequest(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mtx.Lock()
	defer r.mtx.Unlock()
	for _, ts := range wr.Timeseries {
		name := ""
		ext := ""
		for _, l := range ts.Labels {
			switch l.Name {
			case "__name__":
				name = l.Value
			case "cluster":
				ext = l.Value
			}
		}
		for _, s := range ts.Samples {
			r.samples[name+"/"+ext] = append(r.samples[name+"/"+ext], s.Value)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got(key string) []float64 {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	return append([]float64(nil), r.samples[key]...)
}

func TestStorageRemoteWrite(t *testing.T) {
	rcv := &receiver{samples: map[string][]float64{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	cfg, err := Load([]byte(fmt.Sprintf(`
global:
  external_labels: {cluster: eu1}
remote_write:
  - url: %s/api/v1/write
    queue_config: {batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 50ms}
`, srv.URL)), nil)
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	s, err := OpenStorage(nil, reg, StorageConfig{Path: t.TempDir(), FlushDeadline: 5 * time.Second}, cfg.Config, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	// Append like a scraper does, continuously.
	var v float64
	require.Eventually(t, func() bool {
		v++
		appendSample(t, s, labels.FromStrings("__name__", "shoal_test", "job", "a"), time.Now().UnixMilli(), v)
		return len(rcv.got("shoal_test/eu1")) > 0
	}, 30*time.Second, 20*time.Millisecond, "samples arrive with the external labels")
	require.Positive(t, rcv.got("shoal_test/eu1")[0])

	// Remote-write metrics go to the injected registry.
	n, err := testutil.GatherAndCount(reg, "prometheus_remote_storage_samples_total")
	require.NoError(t, err)
	require.Positive(t, n)
}

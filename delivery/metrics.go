package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics keeps Prometheus' remote-storage names for what both have (so
// dashboards and alerts keep working) and adds the queue's.
type metrics struct {
	s *Storage

	sent, bytes, failed, retried *prometheus.CounterVec
	highest                      *prometheus.GaugeVec
	dropped                      *prometheus.CounterVec
	holds, holdSeconds           *prometheus.CounterVec

	backlogBytes, backlogSamples, oldest, queueDropped, resent, full, seriesN *prometheus.Desc
}

func newMetrics(s *Storage) *metrics {
	ep := []string{"remote_name", "url"}
	return &metrics{
		s:       s,
		sent:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prometheus_remote_storage_samples_total", Help: "Samples sent to remote storage and acknowledged."}, ep),
		bytes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prometheus_remote_storage_bytes_total", Help: "Compressed bytes of acknowledged remote-write requests."}, ep),
		failed:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prometheus_remote_storage_samples_failed_total", Help: "Samples in requests the receiver refused (non-recoverable); they are dropped."}, ep),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prometheus_remote_storage_samples_retried_total", Help: "Samples in requests that failed recoverably and were retried."}, ep),
		highest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_delivery_last_success_timestamp_seconds", Help: "When the endpoint last acknowledged a request."}, ep),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_storage_samples_dropped_total", Help: "Scraped samples that could not be written to the delivery queue, by endpoint and reason (disk_full, write_error)."}, []string{"remote_name", "reason"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_delivery_handoff_holds_total",
			Help: "Times the sender waited at a taken-over target for its previous owner to deliver its older samples, by how the wait ended (delivered, no_endpoint, abandoned: no progress for --storage.remote.handoff-wait, disabled).",
		}, []string{"remote_name", "result"}),
		holdSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_delivery_handoff_hold_seconds_total", Help: "Time the sender spent waiting for previous owners of taken-over targets."}, []string{"remote_name"}),

		backlogBytes:   prometheus.NewDesc("shoal_delivery_backlog_bytes", "Bytes queued on disk and not yet acknowledged by the endpoint.", []string{"remote_name"}, nil),
		backlogSamples: prometheus.NewDesc("shoal_delivery_backlog_samples", "Samples queued and not yet acknowledged (an upper bound: counted per queue file).", []string{"remote_name"}, nil),
		oldest:         prometheus.NewDesc("shoal_delivery_oldest_unsent_timestamp_seconds", "Timestamp of the oldest sample not yet acknowledged; 0 when nothing is queued.", []string{"remote_name"}, nil),
		queueDropped:   prometheus.NewDesc("shoal_delivery_samples_dropped_total", "Unsent samples deleted to keep the queue under --storage.max-size.", []string{"remote_name"}, nil),
		resent:         prometheus.NewDesc("shoal_delivery_resend_refused_samples_total", "Samples of the request in flight at the last stop that the receiver refused on resend (most likely written before the stop).", []string{"remote_name"}, nil),
		full:           prometheus.NewDesc("shoal_storage_unwritable", "1 while scraped samples cannot be written to the delivery queue (disk full or I/O error).", nil, nil),
		seriesN:        prometheus.NewDesc("shoal_delivery_series", "Series of the latest scrape of every target scraped in the last 10 minutes.", nil, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{m.sent, m.bytes, m.failed, m.retried, m.highest, m.dropped, m.holds, m.holdSeconds} {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.backlogBytes, m.backlogSamples, m.oldest, m.queueDropped, m.resent, m.full, m.seriesN} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{m.sent, m.bytes, m.failed, m.retried, m.highest, m.dropped, m.holds, m.holdSeconds} {
		c.Collect(ch)
	}
	m.s.mu.RLock()
	eps := m.s.endpoints
	m.s.mu.RUnlock()
	for _, e := range eps {
		st := e.status()
		var oldest float64
		if !st.OldestUnsent.IsZero() {
			oldest = float64(st.OldestUnsent.UnixMilli()) / 1000
		}
		e.q.mu.Lock()
		dropped := e.q.dropped
		e.q.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(m.backlogBytes, prometheus.GaugeValue, float64(st.BacklogBytes), e.name)
		ch <- prometheus.MustNewConstMetric(m.backlogSamples, prometheus.GaugeValue, float64(st.BacklogSamples), e.name)
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, oldest, e.name)
		ch <- prometheus.MustNewConstMetric(m.queueDropped, prometheus.CounterValue, float64(dropped), e.name)
		ch <- prometheus.MustNewConstMetric(m.resent, prometheus.CounterValue, float64(e.resendOK.Load()), e.name)
	}
	var full float64
	if m.s.fullSince.Load() != 0 {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(m.full, prometheus.GaugeValue, full)
	ch <- prometheus.MustNewConstMetric(m.seriesN, prometheus.GaugeValue, float64(m.s.Series()))
}

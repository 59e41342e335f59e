package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// registerOpsMetrics exports what the alert rules (deploy/alerts.yml)
// compare against and no other metric tells: whether /-/ready would answer
// 200, the queue's size limit and the replication factor. They come from
// the options and Ready, so they cost nothing until scraped.
func (a *Agent) registerOpsMetrics(f promauto.Factory) {
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_ready",
		Help: "1 while /-/ready answers 200: joined, first discovery sync received, delivery queue writable, not stopping.",
	}, func() float64 {
		if a.Ready() {
			return 1
		}
		return 0
	})
	f.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_storage_max_size_bytes",
		Help: "--storage.max-size: the largest size of each remote_write endpoint's queue on disk; 0 is unlimited.",
	}).Set(float64(a.opts.Storage.MaxSize))
	f.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_cluster_replication_factor",
		Help: "--cluster.replication-factor: how many agents scrape each target.",
	}).Set(float64(a.opts.Gossip.ReplicationFactor))
}

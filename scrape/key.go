package scrape

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
)

// keyer computes ownership keys. It reuses its builder and digest, so it is
// not safe for concurrent use; each pass creates its own.
//
// The key is xxhash64(job + "\x00" + final scrape URL), where job is the job
// label and the URL the one Prometheus will scrape, both after
// relabel_configs (scheme, __address__, __metrics_path__ and __param_*
// labels). Both are on the Target the scrape engine builds, so the fence
// (fence.go) computes the same key from a scrape. Why this and not a hash of
// labels:
//   - it is identical on every agent: it depends only on the discovered target
//     and the scrape config, which every agent loads from the same file, and
//     not on map order, discovery group order or the replica label;
//   - it follows Prometheus exactly, because the labels come from
//     scrape.PopulateLabels with the job's ScrapeConfig; targets relabeling
//     drops are dropped here too, and targets that relabel to the same URL
//     (Prometheus would scrape them once per distinct label set) land on the
//     same owner, so no endpoint is scraped by two agents;
//   - the job label separates two jobs that scrape the same URL (say, with
//     different intervals), so each is placed on the ring independently;
//     two jobs relabeled to the same job label and URL write the same
//     series, and one owner scrapes both.
type keyer struct {
	lb     *labels.Builder
	digest *xxhash.Digest
}

func newKeyer() *keyer {
	return &keyer{lb: labels.NewBuilder(labels.EmptyLabels()), digest: xxhash.New()}
}

// key returns the ownership key of one discovered target and its labels after
// relabeling. ok is false when relabeling dropped the target or Prometheus
// would refuse it (no address, bad interval); the error says why for the
// latter and is nil for the former.
func (k *keyer) key(cfg *config.ScrapeConfig, tLabels, tgLabels model.LabelSet) (key uint64, url string, lset labels.Labels, ok bool, err error) {
	lset, err = promscrape.PopulateLabels(k.lb, cfg, tLabels, tgLabels)
	if err != nil || lset.IsEmpty() {
		return 0, "", labels.EmptyLabels(), false, err
	}
	// NewTarget + URL is how Prometheus itself builds the URL it scrapes,
	// including scrape_config params overridden by __param_* labels.
	url = promscrape.NewTarget(lset, cfg, tLabels, tgLabels).URL().String()
	return k.sum(lset.Get(model.JobLabel), url), url, lset, true, nil
}

// sum hashes a job name and a scrape URL into a key.
func (k *keyer) sum(job, url string) uint64 {
	k.digest.Reset()
	_, _ = k.digest.WriteString(job)
	_, _ = k.digest.WriteString("\x00")
	_, _ = k.digest.WriteString(url)
	return k.digest.Sum64()
}

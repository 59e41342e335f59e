package scrape

import (
	"strconv"

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
// labels). The Filter computes it once per target and pass and carries it to
// the fence (fence.go) in KeyLabel; both are on the Target the scrape engine
// builds, so the fence can compute the same key should the label be missing.
// Why this and not a hash of labels:
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

// KeyLabel carries a target's ownership key from the Filter, which computes
// it once per pass, to the fence, which judges every scrape of the target:
// the scrape engine keeps the label on its Target (internal "__" labels
// propagate through relabeling) and reading it does not allocate. Like every
// "__" label it is not attached to scraped series. It is the same on every
// agent, so it shifts every agent's scrape phases alike. It shows among a
// Target's DiscoveredLabels, which an API mirroring Prometheus' should hide.
const KeyLabel = "__shoal_key__"

// formatKey is a key as KeyLabel's value: 16 lowercase hex digits.
func formatKey(key uint64) model.LabelValue {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[key&0xf]
		key >>= 4
	}
	return model.LabelValue(b[:])
}

// targetKey returns the ownership key of a target the scrape engine built
// from the Filter's output: the one the Filter carried in KeyLabel, or, when
// the label is missing (a relabeling rule dropped it), computed again with k,
// which is created on demand when nil.
func targetKey(t *promscrape.Target, k *keyer) uint64 {
	if v := t.GetValue(KeyLabel); len(v) == 16 {
		if key, err := strconv.ParseUint(v, 16, 64); err == nil {
			return key
		}
	}
	if k == nil {
		k = newKeyer()
	}
	return k.sum(t.GetValue(model.JobLabel), t.URL().String())
}

package scrape

import (
	"github.com/alecthomas/units"
	"github.com/prometheus/prometheus/config"
)

// Default scrape limits, for jobs whose configuration sets none (Prometheus
// has none: one target can exhaust an agent's memory, and then, when its
// peer takes the target over, the peer's). Each scrape of a target that
// exceeds one fails (up 0, "body size limit exceeded" or "sample limit
// exceeded") instead.
//
// Measured through the whole agent (BenchmarkPoisonTarget in agent, no
// remote write): the first scrape of a 98 MB, 1.3 M series body peaks at
// 1.8 GiB of RSS (18-20 bytes per body byte) and keeps 0.6-0.9 KB of heap
// per series; the steady state is about 1.5 KB of RSS per series (make
// bench). Remote write keeps its own copy of every series' labels on top.
//
//   - DefaultBodySizeLimit bounds what one scrape reads before it parses:
//     64 MiB (uncompressed) is several times a large kube-state-metrics
//     (5-10 MB for 10k pods) and four times vmagent's default
//     (-promscrape.maxScrapeSize, 16 MiB). A larger body is refused while
//     it is read: 270 MiB of peak RSS (the growing read buffer), 5 MiB kept,
//     against 1.8 GiB without the limit.
//   - DefaultSampleLimit bounds the series one scrape adds: 200,000 series
//     are about 300 MB of steady RSS, what a 1-2 GB container holds next
//     to its other targets, and 20 times a large node_exporter or cAdvisor.
//     A body under the body limit with more series is refused after it is
//     parsed: a 45 MB, 600k series body peaks at 410 MiB instead of 890.
const (
	DefaultBodySizeLimit = 64 * units.MiB
	DefaultSampleLimit   = 200_000
)

// MinBodySizeLimit is the smallest default body size limit accepted: below
// it every target fails (node_exporter alone exposes ~100 KiB), so a smaller
// value is a typo for a larger unit.
const MinBodySizeLimit = units.KiB

// Limits are the scrape limits shoal gives a job that sets none of its own.
// A zero field applies no default: the job keeps Prometheus' (no limit).
type Limits struct {
	// BodySize is the default body_size_limit.
	BodySize units.Base2Bytes
	// Samples is the default sample_limit.
	Samples uint
}

// OwnLimits records which limits a job's configuration sets itself, in the
// job or in global, with any value, 0 included. Prometheus' config cannot
// tell an explicit 0 from an absent field once loaded, so the caller reads
// this from the YAML.
type OwnLimits struct {
	BodySize, Samples bool
}

// Defaulted is what Apply gave one job; a zero field means the job keeps
// its own limit or got no default.
type Defaulted struct {
	Job      string
	BodySize units.Base2Bytes
	Samples  uint
}

// Any reports whether a default was applied.
func (d Defaulted) Any() bool { return d.BodySize != 0 || d.Samples != 0 }

// Apply sets on sc every default limit it does not set itself and returns
// what it set. Call it once per loaded config, before ApplyConfig.
func (l Limits) Apply(sc *config.ScrapeConfig, own OwnLimits) Defaulted {
	d := Defaulted{Job: sc.JobName}
	if !own.BodySize && sc.BodySizeLimit == 0 && l.BodySize > 0 {
		sc.BodySizeLimit = l.BodySize
		d.BodySize = l.BodySize
	}
	if !own.Samples && sc.SampleLimit == 0 && l.Samples > 0 {
		sc.SampleLimit = l.Samples
		d.Samples = l.Samples
	}
	return d
}

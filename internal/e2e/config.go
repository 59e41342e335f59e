package e2e

import (
	"github.com/shoal-dev/shoal/internal/testenv"
)

// Defaults of PromConfig (testenv's) fields left at their zero value.
const (
	DefaultScrapeInterval    = testenv.DefaultScrapeInterval
	DefaultJob               = testenv.DefaultJob
	DefaultSDRefresh         = testenv.DefaultSDRefresh
	DefaultBatchSendDeadline = testenv.DefaultBatchSendDeadline
)

// AgentLabel is the external label every agent sets to its node name, so
// the receiver keeps each agent's samples of a target in their own series.
const AgentLabel = "e2e_agent"

// PromConfig is the Prometheus configuration file an agent runs (see
// testenv.PromConfig, the harness' one renderer): one job that discovers
// the farm's targets in Consul, keeps the passing ones, and remote write to
// the receiver.
type PromConfig = testenv.PromConfig

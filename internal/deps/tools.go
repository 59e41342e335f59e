//go:build tools

package tools

import (
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/consul/api"
	_ "github.com/prometheus/prometheus/config"
	_ "github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/consul"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/scrape"
	_ "github.com/prometheus/prometheus/storage/remote"
	_ "github.com/prometheus/prometheus/tsdb/agent"
	_ "github.com/oklog/run"
	_ "github.com/alecthomas/kingpin/v2"
	_ "github.com/prometheus/exporter-toolkit/web"
	_ "github.com/stretchr/testify/require"
	_ "go.uber.org/goleak"
	_ "github.com/cespare/xxhash/v2"
)

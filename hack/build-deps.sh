#!/usr/bin/env bash
# build-deps.sh builds the real components that shoal's integration tests and demo
# run against, from the Go module proxy, into a cache directory that git ignores:
#
#   consul      github.com/hashicorp/consul v1.20.5   (not a Debian package)
#   prometheus  github.com/prometheus/prometheus v0.315.0 (Prometheus 3.15), the
#               remote-write receiver and the agent-mode peer for benchmarks
#
# Each binary is built once and reused; delete the cache directory to rebuild.
# Usage: hack/build-deps.sh [consul|prometheus]...   (default: both)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SHOAL_CACHE_BIN:-$root/.cache/bin}"
work="$root/.cache/build"
mkdir -p "$bin" "$work"

CONSUL_VERSION="${CONSUL_VERSION:-v1.20.5}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.315.0}"

build() { # name module version package
	local name="$1" module="$2" version="$3" pkg="$4"
	if [[ -x "$bin/$name" ]]; then
		echo "build-deps: $name already built at $bin/$name"
		return
	fi
	local dir="$work/$name"
	rm -rf "$dir" && mkdir -p "$dir"
	echo "build-deps: building $name $version from the module proxy (several minutes cold)"
	cat >"$dir/go.mod" <<MOD
module shoal.local/deps/$name

go 1.26

require $module $version
MOD
	cat >"$dir/tools.go" <<GO
//go:build tools

package tools

import _ "$pkg"
GO
	(
		cd "$dir"
		GOFLAGS=-mod=mod GONOSUMDB=github.com/hashicorp/consul-awsauth go mod tidy
		CGO_ENABLED=0 go build -trimpath -o "$bin/$name.tmp" "$pkg"
		mv "$bin/$name.tmp" "$bin/$name"
	)
	echo "build-deps: $name ready at $bin/$name"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(consul prometheus)
for t in "${targets[@]}"; do
	case "$t" in
	consul) build consul github.com/hashicorp/consul "$CONSUL_VERSION" github.com/hashicorp/consul ;;
	prometheus) build prometheus github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus ;;
	*) echo "build-deps: unknown component $t (allowed: consul, prometheus)" >&2; exit 2 ;;
	esac
done

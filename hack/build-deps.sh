#!/usr/bin/env bash
# build-deps.sh builds the real components that shoal's integration tests and demo
# run against, from the Go module proxy, into a cache directory that git ignores:
#
#   consul      github.com/hashicorp/consul v1.20.5   (not a Debian package)
#   prometheus  github.com/prometheus/prometheus v0.315.0 (Prometheus 3.15), the
#               remote-write receiver and the agent-mode peer for benchmarks
#   promtool    github.com/prometheus/prometheus v0.315.0, for `promtool check
#               rules` and `promtool test rules` on deploy/alerts.yml
#   chromium    Debian's chromium package, for the status page test (installed
#               with apt-get, as root or through sudo, when not in $PATH)
#   iproute2    Debian's iproute2 (the ip command), for the attacker test's
#               network namespace (installed with apt-get as root when missing;
#               without root that test skips anyway)
#
# Each binary is built once and reused; delete the cache directory to rebuild.
# Usage: hack/build-deps.sh [consul|prometheus|promtool|chromium|iproute2]...   (default: consul prometheus promtool)
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

# install_chromium installs Debian's chromium when no Chromium is in $PATH (the page
# test also takes chromium-browser, google-chrome or $SHOAL_CHROMIUM_BIN).
install_chromium() {
	local c
	for c in "${SHOAL_CHROMIUM_BIN:-}" chromium chromium-browser google-chrome; do
		if [[ -n "$c" ]] && type -P "$c" >/dev/null; then
			echo "build-deps: chromium already installed ($c)"
			return
		fi
	done
	local sudo_cmd=""
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || {
			echo "build-deps: no chromium and not root: apt-get install chromium" >&2
			exit 1
		}
		sudo_cmd="sudo"
	fi
	echo "build-deps: installing chromium (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

# install_iproute2 installs Debian's iproute2 when there is no ip command and
# this runs as root (the attacker test needs root for its namespace).
install_iproute2() {
	if type -P ip >/dev/null; then
		echo "build-deps: iproute2 already installed"
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "build-deps: no ip command and not root: internal/attacktest will skip"
		return
	fi
	echo "build-deps: installing iproute2 (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(consul prometheus promtool)
for t in "${targets[@]}"; do
	case "$t" in
	consul) build consul github.com/hashicorp/consul "$CONSUL_VERSION" github.com/hashicorp/consul ;;
	prometheus) build prometheus github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus ;;
	promtool) build promtool github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool ;;
	chromium) install_chromium ;;
	iproute2) install_iproute2 ;;
	*) echo "build-deps: unknown component $t (allowed: consul, prometheus, promtool, chromium, iproute2)" >&2; exit 2 ;;
	esac
done

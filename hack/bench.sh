#!/usr/bin/env bash
# bench.sh measures shoal side by side with Prometheus in agent mode and
# vmagent (cmd/shoal-bench, internal/bench): it builds bin/shoal, makes sure
# Consul and Prometheus 3.15 are built (hack/build-deps.sh) and vmagent is
# installed (Debian's victoria-metrics package, when running as root), then
# runs the benchmark with the arguments given.
#
# Usage: hack/bench.sh [shoal-bench flags]
#   hack/bench.sh -count 3 -duration 60s   the side-by-side table (~15 min)
#   hack/bench.sh -only nonowned           memory per non-owned target (~5 min)
#   hack/bench.sh -only shoal -count 1 -profile
#   hack/bench.sh -scale 10k,100k,300k,1m -count 3 -plot docs/cost-curve.png
#                                          the cost curve (~75 min, make bench-scale)
# Results: stdout, and raw.txt and profiles in .cache/bench/<time>/ (-out).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { printf 'bench: %s\n' "$*" >&2; }

log "building bin/shoal"
go build -o bin/shoal ./cmd/shoal
hack/build-deps.sh consul prometheus >&2

if ! command -v vmagent >/dev/null; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "installing vmagent (apt-get install victoria-metrics)"
		apt-get update >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y victoria-metrics >&2
	else
		log "no vmagent and not root: the vmagent run is skipped (apt-get install -y victoria-metrics)"
	fi
fi

exec go run ./cmd/shoal-bench "$@"

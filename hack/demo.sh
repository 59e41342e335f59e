#!/usr/bin/env bash
# demo.sh runs a shoal demo fleet on this machine's loopback interface, from
# local binaries (no containers, no registry):
#
#   Consul         dev agent; the agents find each other and the targets in it
#   shoal-farm     30 synthetic targets, 3 failing their Consul health check
#   receiver       Prometheus with --web.enable-remote-write-receiver
#   shoal-1..3     agents joining via consul+shoal, registered as "shoal",
#                  scraping the farm (consul_sd_configs, every 5s) and
#                  remote writing to the receiver
#
# It prints the pages to open and, every 10 seconds, who scrapes what. Ctrl-C
# stops everything (agents first, so they hand over and flush; Consul last).
# Logs, configurations and data are in .cache/demo/, wiped at each start.
#
# Usage: hack/demo.sh                  (or `make demo`), until Ctrl-C
#        DEMO_DURATION=30 hack/demo.sh  stop after 30 seconds, and exit 1
#                                       unless every healthy target is scraped
#                                       by one agent and seen by the receiver
# Needs: go, curl. Consul and Prometheus are built once by hack/build-deps.sh
# (several minutes the first time). Ports: DEMO_PORT_BASE (default 19000) + 
# 0-99; set it if those are taken.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.cache/demo"
bin="$dir/bin"
duration="${DEMO_DURATION:-0}"
refresh="${DEMO_REFRESH:-10}"
targets="${DEMO_TARGETS:-30}"
unhealthy="${DEMO_UNHEALTHY:-3}"
agents=3
base="${DEMO_PORT_BASE:-19000}"

# Ports, all on 127.0.0.1: every Consul port is set so that a Consul already
# running on this machine (8500, 8300...) is no obstacle.
consul_http=$((base + 0)) consul_dns=$((base + 1)) consul_server=$((base + 2))
consul_serf_lan=$((base + 3)) consul_serf_wan=$((base + 4)) consul_grpc=$((base + 5))
receiver_port=$((base + 10))
web_port() { echo $((base + 10 + $1)); }    # shoal-N web: base+11...
gossip_port() { echo $((base + 20 + $1)); } # shoal-N gossip: base+21...
farm_base_port=$((base + 50))               # farm targets: base+50...

log() { printf 'demo: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ "$duration" =~ ^[0-9]+$ ]] || die "DEMO_DURATION must be a number of seconds, got '$duration'"
[[ "$refresh" =~ ^[1-9][0-9]*$ ]] || die "DEMO_REFRESH must be a positive number of seconds, got '$refresh'"
((targets >= 1 && targets <= 49)) || die "DEMO_TARGETS must be between 1 and 49, got $targets"
((unhealthy >= 0 && unhealthy < targets)) || die "DEMO_UNHEALTHY must be between 0 and $((targets - 1)), got $unhealthy"
for cmd in go curl setsid; do
	command -v "$cmd" >/dev/null || die "$cmd is not installed (Debian: apt-get install -y curl; setsid is in util-linux)"
done

# ---- processes --------------------------------------------------------------
# Each child runs in its own session (setsid), so Ctrl-C in the terminal
# reaches only this script, which then stops them in order. PIDs are kept in
# $dir/*.pid so that a run killed with SIGKILL is cleaned up by the next one.
names=()   # started, in order
sleeper="" # the summary loop's sleep

# start name binary args...: runs binary in the background, logging to $dir/name.log.
start() {
	local name="$1"
	shift
	setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
	echo "$!" >"$dir/$name.pid"
	names+=("$name")
}

pid_of() { cat "$dir/$1.pid" 2>/dev/null || true; }

alive() { # name
	local pid
	pid="$(pid_of "$1")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# stop_all name...: SIGTERM to each, then waits for all of them; SIGKILL
# after the grace period.
stop_all() {
	local name pid grace=40 deadline
	for name in "$@"; do
		if alive "$name"; then
			kill -TERM "$(pid_of "$name")" 2>/dev/null || true
		fi
	done
	deadline=$((SECONDS + grace))
	for name in "$@"; do
		while alive "$name"; do
			if ((SECONDS >= deadline)); then
				log "$name did not stop within ${grace}s, killing it"
				kill -KILL "$(pid_of "$name")" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
		pid="$(pid_of "$name")"
		if [[ -n "$pid" ]]; then
			wait "$pid" 2>/dev/null || true # reap it; its exit status is in its log
		fi
		rm -f "$dir/$name.pid"
	done
}

# kill_stale stops processes a previous run left behind (it was killed
# without its cleanup). Only PIDs whose command line names this demo's
# binaries are touched.
kill_stale() {
	local f pid
	for f in "$dir"/*.pid; do
		[[ -e "$f" ]] || continue
		pid="$(cat "$f")"
		if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/"; then
			log "stopping $(basename "$f" .pid) (pid $pid) left over from a previous run"
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
}

cleanup() {
	local rc=$?
	trap - EXIT
	if [[ -n "$sleeper" ]]; then
		kill "$sleeper" 2>/dev/null || true
	fi
	# Another Ctrl-C must not orphan the processes; stop_all is bounded.
	trap 'log "still stopping, please wait"' INT TERM
	if ((${#names[@]} > 0)); then
		log "stopping: agents (handoff and flush), then the farm (deregisters), receiver, consul"
		local shoals=() n
		for n in "${names[@]}"; do
			[[ "$n" == shoal-* ]] && shoals+=("$n")
		done
		((${#shoals[@]} == 0)) || stop_all "${shoals[@]}"
		for n in farm receiver consul; do
			stop_all "$n"
		done
		log "stopped; logs are in ${dir#"$root"/}/"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for name timeout check...: polls the check command until it succeeds;
# fails if the process exits or the timeout passes.
wait_for() {
	local name="$1" timeout="$2"
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		alive "$name" || {
			tail -n 20 "$dir/$name.log" >&2
			die "$name exited; see ${dir#"$root"/}/$name.log"
		}
		((SECONDS < deadline)) || {
			tail -n 20 "$dir/$name.log" >&2
			die "$name not ready within ${timeout}s; see ${dir#"$root"/}/$name.log"
		}
		sleep 0.3
	done
}

http_ok() { curl -fsS -m 2 -o /dev/null "$1"; }
consul_leader() { curl -fsS -m 2 "http://127.0.0.1:${consul_http}/v1/status/leader" | grep -q '[0-9]'; }
consul_passing() { # service
	curl -fsS -m 2 "http://127.0.0.1:${consul_http}/v1/health/service/$1?passing=1" | grep -q '"ServiceID"'
}
farm_registered() { grep -q '^farm: .*registered as service' "$dir/farm.log"; }

# settled tells whether agent N sees every agent active and agreeing on the ring.
settled() {
	local body
	body="$(curl -fsS -m 2 "http://127.0.0.1:$(web_port "$1")/api/v1/cluster/members")" &&
		[[ "$(grep -o '"state":"active"' <<<"$body" | wc -l)" -eq "$agents" ]] &&
		grep -q '"agree":true' <<<"$body"
}

port_free() { ! (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- prepare ----------------------------------------------------------------
mkdir -p "$dir"
kill_stale
rm -rf "${dir:?}"/{receiver,shoal-*,consul,bin} "$dir"/*.log "$dir"/*.yml
mkdir -p "$bin"

for p in $consul_http $consul_dns $consul_server $consul_serf_lan $consul_serf_wan $consul_grpc \
	$receiver_port $(web_port 1) $(web_port 2) $(web_port 3) $(gossip_port 1) $(gossip_port 2) $(gossip_port 3) \
	$(seq "$farm_base_port" $((farm_base_port + targets - 1))); do
	port_free "$p" || die "port 127.0.0.1:$p is in use; set DEMO_PORT_BASE to another range (now $base)"
done

log "building shoal and shoal-farm"
(cd "$root" && go build -o "$bin/shoal" ./cmd/shoal && go build -o "$bin/shoal-farm" ./cmd/shoal-farm)
"$root/hack/build-deps.sh" consul prometheus >&2
cache_bin="${SHOAL_CACHE_BIN:-$root/.cache/bin}"

# ---- configuration ----------------------------------------------------------
cat >"$dir/shoal.yml" <<YAML
# The agents' configuration: a plain Prometheus configuration. Every agent
# discovers all farm targets in Consul and scrapes those the ring gives it.
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: farm
    consul_sd_configs:
      - server: 127.0.0.1:${consul_http}
        services: [farm]
    relabel_configs:
      # Targets failing their Consul health check are not scraped.
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service_metadata_target]
        target_label: target
remote_write:
  - url: http://127.0.0.1:${receiver_port}/api/v1/write
    # Below the scrape interval: an old owner's last samples arrive before
    # the new owner's first (README, "Ordering at the receiver").
    queue_config:
      batch_send_deadline: 1s
YAML
cat >"$dir/receiver.yml" <<YAML
# The receiver stores what the agents remote write (job farm) and scrapes the
# agents' own /metrics (job shoal), found through their Consul registration.
global:
  scrape_interval: 10s
scrape_configs:
  - job_name: shoal
    consul_sd_configs:
      - server: 127.0.0.1:${consul_http}
        services: [shoal]
YAML
"$bin/shoal" check config "$dir/shoal.yml" >/dev/null

# ---- start ------------------------------------------------------------------
log "starting consul (dev agent) on 127.0.0.1:${consul_http}"
start consul "$cache_bin/consul" agent -dev -ui -node=shoal-demo \
	-bind=127.0.0.1 -client=127.0.0.1 -advertise=127.0.0.1 -log-level=info \
	-hcl="ports { http = ${consul_http}, dns = ${consul_dns}, server = ${consul_server}, serf_lan = ${consul_serf_lan}, serf_wan = ${consul_serf_wan}, grpc = ${consul_grpc}, grpc_tls = -1, https = -1 }"
wait_for consul 60 consul_leader

log "starting the receiver on 127.0.0.1:${receiver_port}"
start receiver "$cache_bin/prometheus" --config.file="$dir/receiver.yml" \
	--storage.tsdb.path="$dir/receiver/data" --web.listen-address="127.0.0.1:${receiver_port}" \
	--web.enable-remote-write-receiver --log.level=warn
wait_for receiver 60 http_ok "http://127.0.0.1:${receiver_port}/-/ready"

log "starting the farm: $targets targets, $unhealthy unhealthy, registered in consul as farm"
start farm "$bin/shoal-farm" --targets="$targets" --unhealthy="$unhealthy" \
	--listen-host=127.0.0.1 --base-port="$farm_base_port" \
	--consul.address="127.0.0.1:${consul_http}" --consul.service=farm
wait_for farm 30 farm_registered

start_agent() { # n
	log "starting shoal-$1 on 127.0.0.1:$(web_port "$1") (gossip $(gossip_port "$1"))"
	mkdir -p "$dir/shoal-$1"
	start "shoal-$1" "$bin/shoal" --config.file="$dir/shoal.yml" --storage.path="$dir/shoal-$1/data" \
		--web.listen-address="127.0.0.1:$(web_port "$1")" \
		--cluster.node-name="shoal-$1" --cluster.listen-address="127.0.0.1:$(gossip_port "$1")" \
		--cluster.join=consul+shoal --consul.address="127.0.0.1:${consul_http}" --consul.register=shoal
}
# The first agent goes first: an agent's Consul check passes only once it is
# ready, so agents started together find no peer and each start a cluster,
# scraping everything until the rejoin loop merges them a few seconds later.
start_agent 1
wait_for shoal-1 60 http_ok "http://127.0.0.1:$(web_port 1)/-/ready"
wait_for shoal-1 30 consul_passing shoal
for n in $(seq 2 "$agents"); do
	start_agent "$n"
done
for n in $(seq 2 "$agents"); do
	wait_for "shoal-$n" 60 http_ok "http://127.0.0.1:$(web_port "$n")/-/ready"
done
for n in $(seq "$agents"); do
	wait_for "shoal-$n" 30 settled "$n"
done

cat >&2 <<TXT

shoal demo is running ($(date +%T)); logs, configs and data in ${dir#"$root"/}/
  shoal-1   http://127.0.0.1:$(web_port 1)/   status page (also /api/v1/cluster/members, /api/v1/cluster/targets)
  shoal-2   http://127.0.0.1:$(web_port 2)/
  shoal-3   http://127.0.0.1:$(web_port 3)/
  receiver  http://127.0.0.1:${receiver_port}/query?g0.expr=count+by+%28target%29+%28up%7Bjob%3D%22farm%22%7D%29
  consul    http://127.0.0.1:${consul_http}/ui/
Try: kill -TERM \$(cat ${dir#"$root"/}/shoal-2.pid) and watch its targets move.
$(if ((duration > 0)); then echo "Stopping after ${duration}s (DEMO_DURATION)."; else echo "Ctrl-C stops everything."; fi)

TXT

# ---- summary ----------------------------------------------------------------
# scraped prints how many targets agent N scrapes (its /api/v1/targets lists
# only the targets it owns), or "down".
scraped() {
	local body
	body="$(curl -fsS -m 2 "http://127.0.0.1:$(web_port "$1")/api/v1/targets" 2>/dev/null)" || {
		echo down
		return
	}
	grep -o '"scrapeUrl"' <<<"$body" | wc -l
}

# received prints how many farm targets have an up series in the receiver.
received() {
	curl -fsS -m 2 -G "http://127.0.0.1:${receiver_port}/api/v1/query" \
		--data-urlencode 'query=count(up{job="farm"})' 2>/dev/null |
		sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)"\].*/\1/p' | grep . || echo 0
}

healthy=$((targets - unhealthy))
summary_ok=0
summary() {
	local line="" n c sum=0 r
	for n in $(seq "$agents"); do
		c="$(scraped "$n")"
		[[ "$c" == down ]] || sum=$((sum + c))
		if ((n == 1)); then
			line="shoal-1: $c targets"
		else
			line+=", shoal-$n: $c"
		fi
	done
	r="$(received)"
	printf '[%s] %s; receiver has up{} for %s targets (%d healthy of %d)\n' \
		"$(date +%T)" "$line" "$r" "$healthy" "$targets"
	summary_ok=0
	if ((sum == healthy && r == healthy)); then
		summary_ok=1
	fi
}

start_time=$SECONDS
while :; do
	for n in "${names[@]}"; do
		alive "$n" || log "$n is not running; see ${dir#"$root"/}/$n.log"
	done
	summary
	pause=$refresh
	if ((duration > 0)); then
		left=$((start_time + duration - SECONDS))
		((left > 0)) || break
		((left >= pause)) || pause=$left
	fi
	# In the background, so that a SIGTERM to this script is handled at once.
	sleep "$pause" &
	sleeper=$!
	wait "$sleeper" || true
	sleeper=""
done

# Non-interactive run: the demo worked if every healthy target was scraped
# by exactly one agent and reached the receiver.
if ((summary_ok)); then
	log "ok: the $healthy healthy targets are shared by the agents and reach the receiver"
else
	log "FAIL: expected the agents to scrape $healthy targets in all and the receiver to have up{} for $healthy"
	exit 1
fi

# shoal Makefile. `make test` is what CI runs (.ci/run); `make demo` starts a demo fleet.
GO        ?= go
BIN       := bin
CACHE_BIN := $(CURDIR)/.cache/bin
LINT_VERSION ?= v2.15.0
export PATH := $(CACHE_BIN):$(PATH)

.PHONY: all build deps test-deps test fuzz-short test-short lint bench bench-scale bench-ring scale-report demo docker swarm fleet fmt vet clean

all: build

build:
	$(GO) build -o $(BIN)/shoal ./cmd/shoal

# deps builds the real Consul, Prometheus and promtool binaries the
# integration tests use (promtool checks and unit-tests deploy/alerts.yml in
# internal/ops), once, into .cache/bin (ignored by git).
deps:
	hack/build-deps.sh consul prometheus promtool

# test-deps also installs Debian's chromium for the status page test and
# iproute2 for the attacker test's network namespace.
test-deps: deps
	hack/build-deps.sh chromium iproute2

test: test-deps
	$(GO) vet ./...
	SHOAL_REQUIRE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 40m ./...
	$(MAKE) fuzz-short

# fuzz-short fuzzes what parses outside input, 50,000 inputs each (a few
# seconds): gossip metadata (with its validation rules) and --cluster.join
# specs. A count, not a duration: Go's fuzz coordinator can fail a
# duration-bounded run with "context deadline exceeded" when a loaded machine
# keeps a worker past the deadline, with no failing input.
fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime 50000x ./gossip/
	$(GO) test -run '^$$' -fuzz '^FuzzParseJoin$$' -fuzztime 50000x ./agent/

test-short:
	$(GO) test -race -short ./...

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION) run ./...

# bench runs shoal side by side with Prometheus 3.15 in agent mode, vmagent
# and a 3-agent shoal fleet on the same target farm and receiver, 3
# repetitions of 60 s each, then memory per non-owned target with 10,000
# Consul targets, and prints the table of medians and ratios (hack/bench.sh,
# about 25 minutes; installs vmagent from Debian when run as root).
BENCH_ARGS ?= -count 3 -duration 60s -profile -only shoal,prometheus,vmagent,fleet,nonowned
bench: deps
	hack/bench.sh $(BENCH_ARGS)

# bench-scale runs the cost curve: shoal, Prometheus agent mode and vmagent,
# one at a time against the farm, at 10k, 100k, 300k and 1M active series
# per agent (20x500 and 100x1000 at 5 s, 200x1500 at 10 s, 500x2000 at
# 20 s), 3 repetitions, and draws docs/cost-curve-<date>.png
# (hack/bench.sh -scale; about 75 minutes, 25 per repetition).
BENCH_SCALE_ARGS ?= -scale 10k,100k,300k,1m -count 3 -plot docs/cost-curve-$(shell date -u +%F).png
bench-scale: deps
	hack/bench.sh $(BENCH_SCALE_ARGS)

# bench-ring prints the ring's quality figures, the load-aware planner's
# simulation and cost, and the gossip convergence figures (about 5 minutes:
# 40 join/leave/crash trials and a 60 s false-death run).
bench-ring:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./gossip/ring/
	$(GO) test -run '^$$' -bench 'Owner|Recompute' ./gossip/ring/
	$(GO) test -run '^TestSimulation$$' -v ./gossip/ring/placement/
	$(GO) test -run '^$$' -bench 'Plan|Replan|Owner' -benchtime 10x ./gossip/ring/placement/
	$(GO) test -run '^$$' -bench 'Convergence|NoFalseDeath' -benchtime 1x -timeout 20m ./gossip/

# scale-report prints the figures of the cluster's own scale (README,
# "Scale of the cluster"): the ring, schedule and moves math for 1M targets
# on 100 and 1,000 members, filter passes and heap per non-owned target at
# 100k and 1M discovered targets, and gossip clusters of 10, 50 and 100
# nodes in one process with the default timers (join and crash seen by
# all, wire bytes per node, metadata size). About 20 minutes and 2 GiB.
scale-report:
	$(GO) test -run '^$$' -bench 'Recompute1M' -benchtime 1x ./gossip/ring/
	$(GO) test -run '^$$' -bench 'ScheduleRecompute1M' -benchtime 1x ./gossip/
	$(GO) test -run '^$$' -bench 'FilterScale' -benchtime 1x -timeout 30m ./scrape/
	$(GO) test -run '^$$' -bench 'ClusterScale' -benchtime 1x -timeout 40m ./gossip/

# demo runs a demo fleet on loopback from local binaries (cmd/shoal-demo):
# Consul, a target farm, a Prometheus receiver and three agents, until Ctrl-C.
# DEMO_DURATION=30 make demo stops after 30 s and fails unless it worked.
demo: deps
	$(GO) build -o $(BIN)/shoal ./cmd/shoal
	$(GO) build -o $(BIN)/shoal-demo ./cmd/shoal-demo
	$(BIN)/shoal-demo -shoal $(BIN)/shoal

# docker builds the Dockerfile's runtime stages from host-built binaries (no
# registry needed) and checks readiness and clustering of the containers
# (internal/dockertest, a Go test that drives the docker CLI; about two
# minutes). For a release image with the golang builder stage: docker build -t shoal . && docker build --target farm -t shoal-farm .
docker:
	$(GO) test -count=1 -v -timeout 15m -run TestDockerImage ./internal/dockertest/

# swarm deploys deploy/swarm/stack.yml on Docker Swarm with images built
# locally (initialising a single-node swarm if the engine has none, and
# leaving it again), scales the shoal service 3 -> 5 -> 3 and rolls it with
# docker service update --force, and checks at the strict receiver that no
# target missed a scrape and nothing was refused as out of order; it prints
# a table (internal/swarmtest, about 6 minutes). Not part of `make test`.
swarm: deps
	SHOAL_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -v -timeout 30m -run TestSwarm ./internal/swarmtest/ -swarm

# fleet runs the fleet-continuity scenarios (internal/fleet) in their long
# version: 60 targets at a 5 s interval, scale out and in, rolling restart
# (with a restart grace, and with handoffs), kill -9, a partition (root and
# iptables), receiver and Consul down 2 minutes; about 25 minutes. It prints a
# table of gaps, duplicates, out-of-order rejections and convergence times.
# The short version runs in `make test`.
fleet: deps
	$(GO) test -race -count=1 -run TestFleet -v -timeout 60m ./internal/fleet/ -fleet.long

clean:
	rm -rf $(BIN)

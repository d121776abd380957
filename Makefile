# Earshot — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# CI runs with a plain environment: make sure the Go toolchain is on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := out/bin
COMPONENTS ?= janus kafka s3 whisper speech chromium icecast
GOTESTFLAGS ?= -race -timeout 40m
# Tests that restart a shared component (Janus): run alone, after the rest.
DISRUPTIVE := TestE2EJanusRestart
BENCHTIME ?= 1s
# Packages whose tests run rooms in real time (speaker bots, tone and latency
# checks): make test runs them one package at a time, after the others, so
# that they do not compete for the CPU with each other or with -race builds.
REALTIME_RE := /ingest($$|/)|/e2etest$$|/webrtcbench$$|/browsertest$$

.PHONY: all build install test test-unit cluster-test soak demo screenshots bench e2e whisper-smoke testbed-up testbed-down testbed-status vet fmt fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/earshot ./cmd/earshot
	$(GO) build -o $(BIN)/speakerbot ./cmd/speakerbot

## install: everything the tests and the demo need (apt, go install, mvn, pip); quiet when present.
install:
	@testbed/build-deps.sh
	@testbed/install.sh $(COMPONENTS)
	@$(GO) mod download

## test: install, start the real components, vet, run the whole suite against them, stop them;
## prints how long each phase took (testbed/test.sh).
test:
	@COMPONENTS='$(COMPONENTS)' GO='$(GO)' GOTESTFLAGS='$(GOTESTFLAGS)' REALTIME_RE='$(REALTIME_RE)' \
	  DISRUPTIVE='$(DISRUPTIVE)' testbed/test.sh

## cluster-test: the fault tests on a three-node Kafka cluster (testbed/kafka.sh start --cluster; SASL_SSL,
## ACLs), beside the single broker `make test` uses (kafka.sh installs Kafka when missing); not part of
## `make test`: broker kills (bus), and every stage as its own processes under a speaker-bot load with one
## ingest, transcribe or policy process killed (internal/cluster; real time, needs Janus, versitygw and the
## Whisper fixture running). The cluster is stopped after.
CLUSTER_TESTS ?= TestCluster
cluster-test:
	@testbed/kafka.sh start --cluster
	@trap 'testbed/kafka.sh stop --cluster' EXIT; \
	  EARSHOT_TESTBED=1 EARSHOT_KAFKA_CLUSTER=1 $(GO) test -race -p 1 -timeout 60m -run '$(CLUSTER_TESTS)' ./bus/ ./internal/cluster/

## test-unit: the suite without the test bed (integration tests skip and say why).
test-unit:
	$(GO) vet ./...
	$(GO) test -race ./...

## demo: earshot run on embedded defaults against Janus with two speaker bots.
demo:
	@testbed/build-deps.sh
	@testbed/install.sh janus whisper speech
	@testbed/demo.sh

## screenshots: the console's screenshots in docs/console, taken by chromium from a demo run.
screenshots:
	@testbed/build-deps.sh
	@testbed/install.sh janus whisper speech chromium
	@DEMO_SCREENSHOTS=docs/console testbed/demo.sh

## e2e: only the end-to-end tests (TestE2E*), on the test bed.
e2e: install
	@testbed/start.sh $(COMPONENTS)
	@trap 'testbed/stop.sh $(COMPONENTS)' EXIT; \
	  EARSHOT_TESTBED=1 $(GO) test -race -timeout 40m -run 'E2E' -skip '$(DISRUPTIVE)' ./... && \
	  EARSHOT_TESTBED=1 EARSHOT_E2E_DISRUPTIVE=1 $(GO) test -race -timeout 40m -run '$(DISRUPTIVE)' ./ingest/

## bench: run the benchmarks on the test bed and print one name=value line per figure.
## One package at a time (-p 1): the end-to-end and WebRTC benchmarks run in real time
## and measure CPU, so nothing else may compete; BenchmarkE2EJanusRestart restarts Janus,
## which is safe only because this target owns the test bed and runs nothing beside it.
## The Kafka cluster's benchmarks (CLUSTER_BENCH) run last, once, with the cluster started
## only then, so that its three idle JVMs do not share the CPU with the other figures.
CLUSTER_BENCH ?= BenchmarkCluster
bench: install
	@testbed/start.sh $(COMPONENTS)
	@mkdir -p out
	@trap 'testbed/kafka.sh stop --cluster; testbed/stop.sh $(COMPONENTS)' EXIT; status=0; \
	  EARSHOT_TESTBED=1 EARSHOT_E2E_DISRUPTIVE=1 $(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./... \
	    | tee out/bench.txt || status=$$?; \
	  testbed/kafka.sh start --cluster || status=$$?; \
	  EARSHOT_TESTBED=1 EARSHOT_KAFKA_CLUSTER=1 $(GO) test -p 1 -run '^$$' -bench '$(CLUSTER_BENCH)' -benchtime 1x -timeout 40m ./bus/ ./internal/cluster/ \
	    | tee -a out/bench.txt || status=$$?; \
	  testbed/figures.sh out/bench.txt || status=$$?; exit $$status

## soak: every stage as its own processes on the three-node Kafka cluster under moderate load for SOAK
## (default 1h; e.g. SOAK=6m for a check), sampling each process's RSS, goroutines, open file descriptors
## and the transcription lag after a warm-up; prints soak_*=value (full log in out/soak.txt) and fails on growth (internal/cluster,
## TestSoak). Not part of `make test`; needs Janus, versitygw and the Whisper fixture running. The cluster
## is stopped after, as in cluster-test.
SOAK ?= 1h
SOAK_TIMEOUT ?= 3h
soak:
	@testbed/kafka.sh start --cluster
	@mkdir -p out
	@trap 'testbed/kafka.sh stop --cluster' EXIT; status=0; \
	  echo "soak: $(SOAK); progress in out/soak.txt"; \
	  EARSHOT_TESTBED=1 EARSHOT_KAFKA_CLUSTER=1 EARSHOT_SOAK='$(SOAK)' $(GO) test -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' \
	    ./internal/cluster/ >out/soak.txt 2>&1 || status=$$?; \
	  grep -E '^soak_[a-z_]+=' out/soak.txt; tail -n 3 out/soak.txt; exit $$status

## whisper-smoke: build the `whisper`-tagged binary in a Debian sid root and smoke-test it (make test runs it too).
whisper-smoke:
	@testbed/whisper-sid.sh smoke

testbed-up: install
	@testbed/start.sh $(COMPONENTS)

testbed-down:
	@testbed/stop.sh $(COMPONENTS)

testbed-status:
	@testbed/status.sh $(COMPONENTS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: a short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
	  done; \
	done

clean:
	rm -rf $(BIN) out/demo-* earshot-data

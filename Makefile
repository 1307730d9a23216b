# sluice: build, run, test.
#
#   make run    start the daemon on its embedded defaults (NATS Streaming in ./data)
#   make test   vet, format check, unit and integration tests with the race detector;
#               the integration packages twice, on NATS Streaming and on JetStream
#   make bench  the Go benchmarks (host, bench): results in build/bench/, to
#               compare with bench/results/ using benchstat (see bench/README.md)
#   make soak   the long crash and fault runs, and every fuzz target for longer

GO       ?= go
WAT2WASM ?= wat2wasm --debug-names
CLANG    ?= clang
WASM     := build/wasm

# Every guest module the examples and tests use, built from source.
WAT_EXAMPLES := echo-wat
WAT_TESTDATA := $(basename $(notdir $(wildcard host/testdata/*.wat)))
GO_REACTORS  := upper-go http-go
GO_COMMANDS  := hello-wasi
C_REACTORS   := wordcount-c http-c
C_TESTDATA   := $(basename $(notdir $(wildcard host/testdata/*.c)))

GUESTS := $(addprefix $(WASM)/,$(addsuffix .wasm,$(WAT_EXAMPLES) $(WAT_TESTDATA) $(GO_REACTORS) $(GO_COMMANDS) $(C_REACTORS) $(C_TESTDATA) goguest wfguest))

GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum
SDK_SOURCES := $(wildcard guests/go/*.go guests/go/sluicehttp/*.go)

# Packages whose tests run with the race detector (all of them: the cost is
# acceptable and concurrency lives in most).
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: all build wasm run test deps vet fmt-check unit unit-jetstream unit-selfcluster unit-migrate fuzz bench soak clean

all: build

build: bin/sluice wasm

bin/sluice: $(GO_SOURCES)
	$(GO) build -trimpath -o $@ ./cmd/sluice

wasm: $(GUESTS)

$(WASM):
	mkdir -p $@

$(WASM)/echo-wat.wasm: examples/echo-wat/echo.wat | $(WASM)
	$(WAT2WASM) -o $@ $<

$(WASM)/%.wasm: host/testdata/%.wat | $(WASM)
	$(WAT2WASM) -o $@ $<

$(WASM)/upper-go.wasm: $(wildcard examples/upper-go/*.go) $(SDK_SOURCES) | $(WASM)
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $@ ./examples/upper-go

$(WASM)/http-go.wasm: $(wildcard examples/http-go/*.go) $(SDK_SOURCES) | $(WASM)
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $@ ./examples/http-go

$(WASM)/goguest.wasm: $(wildcard host/testdata/goguest/*.go) $(SDK_SOURCES) | $(WASM)
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $@ ./host/testdata/goguest

$(WASM)/wfguest.wasm: $(wildcard engine/testdata/wfguest/*.go) $(SDK_SOURCES) | $(WASM)
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $@ ./engine/testdata/wfguest

$(WASM)/hello-wasi.wasm: $(wildcard examples/hello-wasi/*.go) | $(WASM)
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -o $@ ./examples/hello-wasi

$(WASM)/wordcount-c.wasm: examples/wordcount-c/wordcount.c guests/c/sluice.h | $(WASM)
	$(CLANG) --target=wasm32-wasi -O2 -mexec-model=reactor -Iguests/c -o $@ $<

$(WASM)/http-c.wasm: examples/http-c/http.c guests/c/sluice.h | $(WASM)
	$(CLANG) --target=wasm32-wasi -O2 -mexec-model=reactor -Iguests/c -o $@ $<

$(WASM)/%.wasm: host/testdata/%.c | $(WASM)
	$(CLANG) --target=wasm32-wasi -O2 -o $@ $<

# run needs only Go: it builds the Go examples the README deploys.
run: bin/sluice $(WASM)/hello-wasi.wasm $(WASM)/upper-go.wasm
	./bin/sluice daemon

# test installs the guest toolchains it needs first (scripts/deps: Debian
# packages, only those missing), so that it runs on a fresh machine.
test: deps
	$(MAKE) build vet fmt-check unit unit-jetstream unit-selfcluster unit-migrate fuzz

deps:
	./scripts/deps

vet:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guests/go/... ./examples/upper-go/ ./examples/http-go/ ./examples/hello-wasi/ ./host/testdata/goguest/ ./engine/testdata/wfguest/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# The daemon package's tests share compiled guests across both runs
# (compiling the Go guests under the race detector is most of their time).
TEST_CACHE := $(CURDIR)/build/test-cache

unit: wasm
	SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test $(TEST_FLAGS) -skip '^TestSelfCluster' ./...

# Three self-clustered daemons and a kill -9 run on their own, after the
# other packages: on 2 cores shared with every other package's tests, the
# trio's Raft elections and a 2 s AckWait were starved into a stall.
unit-selfcluster: build
	$(GO) test $(TEST_FLAGS) -run '^TestSelfCluster' ./cmd/sluice/

# A migration end to end: the built binary, on JetStream, runs what a NATS
# Streaming daemon left (its sleepers taken over, canceled, new runs).
unit-migrate: build
	$(GO) test $(TEST_FLAGS) -tags migrate_e2e -run '^TestJetStreamDaemonRunsWhatWasMigrated$$' ./internal/app/migrate/

# The packages that start daemons run a second time on JetStream
# (SLUICE_TEST_BROKER; unit runs them on NATS Streaming, the default).
# Skipped there: the tests of NATS Streaming's own servers and store (the
# cluster of nats-streaming-server processes, a damaged NATS Streaming
# file), and those that pin their broker and so already ran.
JS_PACKAGES := ./internal/app/daemon/ ./cmd/sluice/
JS_SKIP     := ^(TestClusterFaults|TestDamagedCatalogStopsTheStart|TestWhatMovingAChannelAsideLoses|TestStoreLimitsNameTheComponentsChannels|TestSelfCluster.*|TestBrokerOptions|TestDataDirWithoutBrokerFile)$$
unit-jetstream: wasm
	SLUICE_TEST_BROKER=jetstream SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test $(TEST_FLAGS) -skip '$(JS_SKIP)' $(JS_PACKAGES)

# Every fuzz target (scripts/fuzz finds them), FUZZTIME each: briefly in
# make test, longer in make soak. Their seed corpora also run as ordinary
# tests in unit.
FUZZTIME ?= 3s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz

# Each suite's results go to build/bench/NAME.txt, in the format of the
# committed baseline bench/results/NAME.txt (a suite fails without its
# closing "ok" line: tee would hide go test's exit status):
#   benchstat bench/results/coldstart.txt build/bench/coldstart.txt
BENCH_OUT   ?= build/bench
BENCH_COUNT ?= 6

bench: build
	mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -timeout 60m -bench 'ColdStart|Process' -benchtime 1x -count $(BENCH_COUNT) ./internal/app/bench/ | tee $(BENCH_OUT)/coldstart.txt && grep -q '^ok' $(BENCH_OUT)/coldstart.txt
	$(GO) test -run '^$$' -timeout 60m -bench '^BenchmarkHTTP$$' -benchtime 100000x -count $(BENCH_COUNT) ./internal/app/bench/ | tee $(BENCH_OUT)/http.txt && grep -q '^ok' $(BENCH_OUT)/http.txt
	$(GO) test -run '^$$' -timeout 60m -bench '^BenchmarkWorkflow$$' -benchtime 1x -count $(BENCH_COUNT) ./internal/app/bench/ | tee $(BENCH_OUT)/workflow.txt && grep -q '^ok' $(BENCH_OUT)/workflow.txt
	$(GO) test -run '^$$' -timeout 60m -bench '^BenchmarkMQ$$' -benchtime 1x -count 3 ./internal/app/bench/ | tee $(BENCH_OUT)/mq.txt && grep -q '^ok' $(BENCH_OUT)/mq.txt
	$(GO) test -run '^$$' -timeout 60m -bench . -benchmem -count $(BENCH_COUNT) ./host/ | tee $(BENCH_OUT)/host.txt && grep -q '^ok' $(BENCH_OUT)/host.txt
	$(GO) test -run '^$$' -timeout 60m -bench 'TaskOverhead|Invocations' -benchtime 2000x -count 3 ./engine/ | tee $(BENCH_OUT)/engine.txt && grep -q '^ok' $(BENCH_OUT)/engine.txt
	$(GO) test -run '^$$' -timeout 60m -bench Replay -benchtime 1x -count 3 ./engine/ | tee -a $(BENCH_OUT)/engine.txt && [ "$$(grep -c '^ok' $(BENCH_OUT)/engine.txt)" = 2 ]

soak: build
	$(GO) test -tags soak -count=1 -timeout 60m -run Soak -v ./...
	FUZZTIME=2m GO=$(GO) ./scripts/fuzz

clean:
	rm -rf bin build

# sluice: build, run, test.
#
#   make run    start the daemon on its embedded defaults (NATS Streaming in ./data)
#   make test   vet, format check, unit and integration tests with the race detector,
#               the console in headless Chromium;
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
AS_GUESTS    := hello-as http-as greet-as asguest

GUESTS := $(addprefix $(WASM)/,$(addsuffix .wasm,$(WAT_EXAMPLES) $(WAT_TESTDATA) $(GO_REACTORS) $(GO_COMMANDS) $(C_REACTORS) $(C_TESTDATA) $(AS_GUESTS) goguest wfguest))

GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum
SDK_SOURCES := $(wildcard guests/go/*.go guests/go/sluicehttp/*.go)

# Rust guests (the SDK in guests/rust, examples/*-rust), each its own
# cargo package. scripts/rust-wasm picks the cargo, the rustc and the
# target: the first rustc in PATH may be a rustup one without a wasm32
# WASI standard library. Cargo's output goes to build/cargo, never into
# the source tree.
RUST_REACTORS := hello-rust http-rust
RUST_COMMANDS := command-rust
RUST_SDK      := guests/rust/Cargo.toml $(wildcard guests/rust/src/*.rs)
CARGO_TARGET  := $(CURDIR)/build/cargo
GUESTS += $(addprefix $(WASM)/,$(addsuffix .wasm,$(RUST_REACTORS) $(RUST_COMMANDS)))
# Extism plugins built with Extism's own PDKs (below)
GUESTS += $(WASM)/extism-go.wasm $(WASM)/extism-as.wasm

# cargo-wasm builds examples/$(1) for WASI and copies its $(2).wasm to $@.
define cargo-wasm
tc=$$(./scripts/rust-wasm) && set -- $$tc && \
RUSTC=$$2 $$1 build --quiet --locked --release --target $$3 --target-dir $(CARGO_TARGET) --manifest-path examples/$(1)/Cargo.toml && \
cp $(CARGO_TARGET)/$$3/release/$(2).wasm $@
endef

$(WASM)/hello-rust.wasm: examples/hello-rust/Cargo.toml $(wildcard examples/hello-rust/src/*.rs) $(RUST_SDK) | $(WASM)
	$(call cargo-wasm,hello-rust,hello_rust)

$(WASM)/http-rust.wasm: examples/http-rust/Cargo.toml $(wildcard examples/http-rust/src/*.rs) $(RUST_SDK) | $(WASM)
	$(call cargo-wasm,http-rust,http_rust)

$(WASM)/command-rust.wasm: examples/command-rust/Cargo.toml $(wildcard examples/command-rust/src/*.rs) | $(WASM)
	$(call cargo-wasm,command-rust,command-rust)

# The SDK's and the examples' own tests, run natively (cargo test) with
# the same toolchain (its rustdoc for the doc tests).
unit-rust:
	tc=$$(./scripts/rust-wasm) && set -- $$tc && \
	for m in guests/rust $(addprefix examples/,$(RUST_REACTORS)); do \
		RUSTC=$$2 RUSTDOC=$$(dirname $$2)/rustdoc $$1 test --quiet --locked --target-dir $(CARGO_TARGET) --manifest-path $$m/Cargo.toml || exit 1; \
	done

# Packages whose tests run with the race detector (all of them: the cost is
# acceptable and concurrency lives in most). The daemon's tests and the
# binary's run in parallel (t.Parallel), four at a time: each daemon spends
# most of its test waiting (fsyncs, timers, retries), and run one after the
# other they took 2 of make test's 13 minutes on a quiet machine (114 s and
# 125 s; in parallel 44 s and 82 s).
TEST_FLAGS ?= -race -count=1 -timeout 15m -parallel 4

.PHONY: all build wasm run test deps vet fmt-check unit unit-rust unit-console screenshots unit-jetstream unit-selfcluster unit-migrate fuzz bench soak clean

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

# AssemblyScript guests (guests/assemblyscript): the compiler comes from
# npm, pinned by the SDK's package-lock.json, installed under build/as
# (npm ci, from npm's cache when it has it), never in the source tree.
# The SDK is found as the package sluice-sdk through build/as/lib, the way
# a project finds its copy through node_modules.
NPM    ?= npm
AS_DIR := build/as
ASC    := $(AS_DIR)/node_modules/.bin/asc
AS_SDK := $(wildcard guests/assemblyscript/*.ts) guests/assemblyscript/asconfig.json
AS_BUILD = $(ASC) $< --config guests/assemblyscript/asconfig.json --path $(AS_DIR)/lib -o $@

$(ASC): guests/assemblyscript/package.json guests/assemblyscript/package-lock.json
	mkdir -p $(AS_DIR)/lib
	cp guests/assemblyscript/package.json guests/assemblyscript/package-lock.json $(AS_DIR)/
	cd $(AS_DIR) && $(NPM) ci --prefer-offline --no-audit --no-fund
	ln -sfn ../../../guests/assemblyscript $(AS_DIR)/lib/sluice-sdk
	touch $@

$(WASM)/hello-as.wasm: examples/hello-as/hello.ts $(AS_SDK) $(ASC) | $(WASM)
	$(AS_BUILD)

$(WASM)/http-as.wasm: examples/hello-as/http.ts $(AS_SDK) $(ASC) | $(WASM)
	$(AS_BUILD)

$(WASM)/greet-as.wasm: examples/hello-as/command.ts $(AS_SDK) $(ASC) | $(WASM)
	$(AS_BUILD)

$(WASM)/asguest.wasm: guests/assemblyscript/test/asguest.ts $(AS_SDK) $(ASC) | $(WASM)
	$(AS_BUILD)

# Extism plugins built with Extism's own PDKs, unmodified, for the host's
# tests of the extism kind: the Go PDK (its own module, so that the main
# go.mod does not gain it) and the AssemblyScript PDK (npm, pinned by the
# lockfile; node_modules in build/, never in the tree).
EXTISM_AS := build/extism-as

$(WASM)/extism-go.wasm: host/testdata/extism-go/main.go host/testdata/extism-go/go.mod host/testdata/extism-go/go.sum | $(WASM)
	cd host/testdata/extism-go && GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $(CURDIR)/$@ .

$(EXTISM_AS)/node_modules/.package-lock.json: host/testdata/extism-as/package.json host/testdata/extism-as/package-lock.json
	mkdir -p $(EXTISM_AS)
	cp host/testdata/extism-as/package.json host/testdata/extism-as/package-lock.json $(EXTISM_AS)/
	cd $(EXTISM_AS) && $(NPM) ci --prefer-offline --no-audit --no-fund

$(WASM)/extism-as.wasm: host/testdata/extism-as/plugin.ts $(EXTISM_AS)/node_modules/.package-lock.json | $(WASM)
	cp host/testdata/extism-as/plugin.ts $(EXTISM_AS)/
	cd $(EXTISM_AS) && npx --no-install asc plugin.ts --outFile $(CURDIR)/$@ --use abort=plugin/myAbort --optimize --noAssert

# run needs only Go: it builds the Go examples the README deploys.
run: bin/sluice $(WASM)/hello-wasi.wasm $(WASM)/upper-go.wasm
	./bin/sluice daemon

# test installs the guest toolchains it needs first (scripts/deps: Debian
# packages, only those missing), so that it runs on a fresh machine.
test: deps
	$(MAKE) build vet fmt-check unit unit-rust unit-console unit-jetstream unit-selfcluster unit-migrate fuzz

deps:
	./scripts/deps

vet:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guests/go/... ./examples/upper-go/ ./examples/http-go/ ./examples/hello-wasi/ ./host/testdata/goguest/ ./engine/testdata/wfguest/
	cd bench/extism && $(GO) vet ./...
	cd host/testdata/extism-go && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# The daemon package's tests share compiled guests across both runs
# (compiling the Go guests under the race detector is most of their time).
TEST_CACHE := $(CURDIR)/build/test-cache

unit: wasm
	SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test $(TEST_FLAGS) -skip '^TestSelfCluster' ./...
	cd bench/extism && SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test -count=1 -run '^TestSameOutput$$' .
	SLUICE_TEST_SNAPSHOTS=off SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test $(TEST_FLAGS) -run '^Test(Reactors|InputBufferGrows|Metadata|ReactorLogs|BadGuests|GoPanicKeepsInstance|ReactorExit|HTTPResponsePerCall|SnapshotReseeds)$$' ./host/

# The console in headless Chromium (scripts/deps installs it) against one
# real daemon: tagged browser, so that unit runs the console's other tests
# without starting a browser.
unit-console: wasm
	$(GO) vet -tags browser ./internal/app/console/
	SLUICE_TEST_CACHE=$(TEST_CACHE) $(GO) test $(TEST_FLAGS) -tags browser ./internal/app/console/

# The README's screenshots (docs/console/), refreshed from the browser
# tests: the top 1280x800 of each page they keep in build/screenshots/.
SCREENSHOTS := functions function workflows workflow invocations invocation topology topic dead-letters-redriven login
screenshots: unit-console
	mkdir -p docs/console
	for s in $(SCREENSHOTS); do cp build/screenshots/small/$$s.png docs/console/$$s.png; done

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

# Every fuzz target (scripts/fuzz finds them), FUZZTIME each, two at a
# time: briefly in make test, longer in make soak. Their seed corpora also run as ordinary
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
	cd bench/extism && $(GO) test -run '^$$' -timeout 60m -bench Extism -count $(BENCH_COUNT) . | tee $(abspath $(BENCH_OUT))/extism.txt && grep -q '^ok' $(abspath $(BENCH_OUT))/extism.txt
	$(GO) test -run '^$$' -timeout 60m -bench 'TaskOverhead|Invocations' -benchtime 2000x -count 3 ./engine/ | tee $(BENCH_OUT)/engine.txt && grep -q '^ok' $(BENCH_OUT)/engine.txt
	$(GO) test -run '^$$' -timeout 60m -bench Replay -benchtime 1x -count 3 ./engine/ | tee -a $(BENCH_OUT)/engine.txt && [ "$$(grep -c '^ok' $(BENCH_OUT)/engine.txt)" = 2 ]

soak: build
	$(GO) test -tags soak -count=1 -timeout 60m -run Soak -v ./...
	FUZZTIME=2m GO=$(GO) ./scripts/fuzz

clean:
	rm -rf bin build

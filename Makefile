# ks-clean: `make test` runs every test on a real control plane; `make demo`
# starts one seeded with the incident and walks through it.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/ks-clean/ks-clean/internal/cli.version=$(VERSION) -X github.com/ks-clean/ks-clean/internal/cli.commit=$(COMMIT)
TEST_TIMEOUT ?= 60m
# Control-plane tests that only wait on Kubernetes' controllers run side by
# side (t.Parallel), this many per package; two packages run at once.
TEST_PARALLEL ?= 4
# The conformance tests load ../shared/footprints; missing, they fail (set
# KS_REQUIRE_FOOTPRINTS=0 to skip them instead).
export KS_REQUIRE_FOOTPRINTS ?= 1
# The oldest Kubernetes version ks-clean is tested on (make test runs the
# incident on it too).
COMPAT_OLDEST ?= 1.22.17

.PHONY: all build install vet cross testbin test test-short test-compat test-long bench demo clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ks-clean .

# Installs ks-clean into GOBIN (default: GOPATH/bin). Copied or linked as
# kubectl-ks_clean on PATH, it is also `kubectl ks-clean`.
install:
	$(GO) install -ldflags "$(LDFLAGS)" .

vet:
	$(GO) vet ./...

# On-call engineers run it from laptops: the macOS and Windows builds must
# keep compiling.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null .
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null .

# Builds etcd, kube-apiserver and kube-controller-manager from their Go
# modules (about 8 minutes cold, seconds when cached).
testbin:
	@bash scripts/testbin.sh >/dev/null

# The fast tier: unit, golden-plan and recorded-scenario tests, with the race
# detector, no control plane (-short skips every test that starts one).
# The first thing make test runs.
test-short: vet
	$(GO) test -vet=off -short -race -count=1 ./...

# ./uninstall/ first: it is the longest package (about 10 minutes); started
# first, the other packages share the second core beside it instead of
# running before it.
# The politeness test compares how often API Priority and Fairness refuses
# two applies, one after the other: with other packages' control planes
# beside it the server's pace changes between the two, so it runs alone,
# after them.
# Then the incident again on the oldest Kubernetes of the matrix (its control
# plane built once, about 6 minutes cold; make test-compat runs them all).
ALONE := ^TestApplyIsPoliteWhenThrottled$$
test: test-short testbin cross
	KUBEBUILDER_ASSETS="$$(bash scripts/testbin.sh | tail -n 1)" $(GO) test -vet=off -count=1 -parallel $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) -skip '$(ALONE)' ./uninstall/ ./...
	KUBEBUILDER_ASSETS="$$(bash scripts/testbin.sh | tail -n 1)" $(GO) test -vet=off -count=1 -timeout $(TEST_TIMEOUT) -run '$(ALONE)' ./uninstall/
	$(GO) run ./test/cmd/ks-compat -versions $(COMPAT_OLDEST) -scenarios incident -out bin/compat-oldest.md

# The core scenarios on every Kubernetes version of the matrix
# (KS_COMPAT_VERSIONS, KS_COMPAT_SCENARIOS): builds each version's control
# plane once (about 10 minutes cold each, cached after), then prints the
# table version × scenario (also bin/compat-report.md; docs/compatibility.md).
test-compat:
	$(GO) run ./test/cmd/ks-compat

# The fault-injection property over 100 seeds (about an hour).
test-long: testbin
	KS_FAULT_SEEDS=100 KUBEBUILDER_ASSETS="$$(bash scripts/testbin.sh | tail -n 1)" $(GO) test -count=1 -timeout 180m -run TestApplyUnderFaults -v ./uninstall/

# Benchmarks on real control planes: the plan (KS_BENCH_NAMESPACES sizes it),
# then plan and apply against the floor and a kubectl baseline
# (KS_BENCH_SIZES, KS_BENCH_BASELINE_MAX; 1 to 1.5 hours on 2 cores).
# Builds kubectl for the baseline. Table: bin/bench-report.md, see
# docs/benchmarks.md.
bench: testbin
	@bash scripts/testbin.sh kubectl >/dev/null
	KUBEBUILDER_ASSETS="$$(bash scripts/testbin.sh | tail -n 1)" $(GO) test -run '^$$' -bench . -benchtime 3x -benchmem -timeout 60m ./plan/
	@mkdir -p bin
	KUBEBUILDER_ASSETS="$$(bash scripts/testbin.sh kubectl | tail -n 1)" KS_BENCH_REPORT="$${KS_BENCH_REPORT:-$(CURDIR)/bin/bench-report.md}" \
	  $(GO) test -run '^$$' -bench BenchmarkTeardown -benchtime 1x -timeout 240m ./test/bench/

demo: testbin build
	bash scripts/demo.sh

clean:
	rm -rf bin .demo

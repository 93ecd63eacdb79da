# teleport-fluent-bit: a Fluent Bit input plugin for Teleport audit events.
GO      ?= go
CC      ?= gcc
BUILD   := build
GOFLAGS ?=

PLUGIN  := $(BUILD)/in_teleport.so
CLI     := $(BUILD)/teleport-fluent-bit
HOST    := $(BUILD)/flbhost
AUTH    := $(BUILD)/teleportd

.PHONY: all build test unit chart e2e demo vet docs-check clean fuzz fuzz-short FORCE

all: build

## build: the plugin, the CLI, and the test stand-ins (Fluent Bit host, Teleport Auth Service)
build: $(PLUGIN) $(CLI) $(HOST) $(AUTH)

# The go command decides what is stale; FORCE only makes make ask it.
$(PLUGIN): FORCE
	CGO_ENABLED=1 $(GO) build $(GOFLAGS) -buildmode=c-shared -o $@ ./plugin

$(CLI): FORCE
	$(GO) build $(GOFLAGS) -o $@ ./cmd/teleport-fluent-bit

$(AUTH): FORCE
	$(GO) build $(GOFLAGS) -o $@ ./test/cmd/teleportd

$(HOST): test/flbhost/flbhost.c
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -o $@ $< -ldl -lpthread

# The Helm chart's tests: a module of their own (see deploy/helm/go.mod).
CHART_MOD := deploy/helm

## test: vet, unit tests, end-to-end tests through the real .so, the Helm chart's tests
test: build vet
	$(GO) test -count=1 -timeout 30m ./...
	cd $(CHART_MOD) && $(GO) test -count=1 ./...
	$(MAKE) --no-print-directory fuzz-short

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)
	cd $(CHART_MOD) && $(GO) test -count=1 ./...

## chart: the Helm chart's tests only
chart:
	cd $(CHART_MOD) && $(GO) test -count=1 ./...

e2e: build
	$(GO) test -count=1 -timeout 30m -v ./test/e2e/

vet:
	$(GO) vet ./...
	cd $(CHART_MOD) && $(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)

## docs-check: every relative link and anchor in the Markdown files leads
## somewhere, every docs/ page is in the README's index, the teleport inputs
## and TOML files in the examples use only keys the plugin reads, and
## docs/configuration.md has a row for every key conf/ accepts (names, type,
## default, bounds); `go test ./...` (make test) runs the same tests
docs-check:
	$(GO) test -count=1 ./docs/
	$(GO) test -count=1 -run '^TestReference' ./conf/

## fuzz: every fuzz target (any func Fuzz* in a _test.go file) for FUZZTIME each
## (default 60s); new failing inputs land in the package's testdata/fuzz/<Name>/
## fuzz-short: the same for FUZZTIME=10000x (iterations) each, the CI-length run
FUZZTIME ?= 60s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for name in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
			echo "== $$dir $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

# An iteration count, not a duration: Go's fuzzer sometimes reports
# "context deadline exceeded" as a failure when -fuzztime's deadline falls
# while it minimizes a new input (seen on FuzzLoad, 1 run in 4).
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=10000x

## bench: the benchmark of issue 6 against the Teleport stand-in holding N events
## (default 1,000,000; `make bench N=5000000`): the plugin in the Fluent Bit
## stand-in, the bare drain, the per-event POST baseline, freshness and restart
## time, printed as one table (also in build/bench/results.md). BENCHFLAGS
## passes more flags to test/bench (see go run ./test/bench -h).
N          ?= 1000000
BENCHFLAGS ?=
BENCHBIN   := $(BUILD)/benchmark
.PHONY: bench bench-search
bench: build
	$(GO) build $(GOFLAGS) -o $(BENCHBIN) ./test/bench
	$(BENCHBIN) -n $(N) -bin $(BUILD) -dir $(BUILD)/bench $(BENCHFLAGS)

## bench-search: only the search-path section of the benchmark, with the file-log and DynamoDB backend rows (about ten minutes)
bench-search: build
	$(GO) build $(GOFLAGS) -o $(BENCHBIN) ./test/bench
	$(BENCHBIN) -bin $(BUILD) -dir $(BUILD)/bench-search -skip bare,plugin,audit,rss,baseline,fresh,restart $(BENCHFLAGS)

## demo: a local Teleport stand-in with a live stream of events, exported by the plugin
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BUILD)

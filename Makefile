# teleport-fluent-bit: a Fluent Bit input plugin for Teleport audit events.
GO      ?= go
CC      ?= gcc
BUILD   := build
GOFLAGS ?=

PLUGIN  := $(BUILD)/in_teleport.so
CLI     := $(BUILD)/teleport-fluent-bit
HOST    := $(BUILD)/flbhost
AUTH    := $(BUILD)/teleportd

.PHONY: all build test unit e2e demo vet clean FORCE

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

## test: vet, unit tests and end-to-end tests through the real .so
test: build vet
	$(GO) test -count=1 -timeout 30m ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e: build
	$(GO) test -count=1 -timeout 30m -v ./test/e2e/

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)

## demo: a local Teleport stand-in with a live stream of events, exported by the plugin
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BUILD)

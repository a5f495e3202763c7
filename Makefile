# Newcomer entry points: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
BIN      := bin
REGISTRY ?= ./registry

.PHONY: all build demo test test-unit vet fmt-check deps clean

all: build

build:
	$(GO) build -o $(BIN)/publish ./cmd/publish

# Publish a freshly built sample image into ./registry and list it.
demo: build
	$(GO) run ./tools/sampleimage -out .build/sample -name hello
	$(BIN)/publish hello --bucket $(REGISTRY) --metadata .build/sample/incus.tar.xz --rootfs .build/sample/rootfs.squashfs
	$(BIN)/publish list --bucket $(REGISTRY)
	$(BIN)/publish verify --bucket $(REGISTRY)

deps:
	scripts/install-deps.sh

# The whole suite: format and vet checks, then every test with the race
# detector; the real-client tests must run (a missing incus fails).
test: fmt-check vet
	REGISTRY_E2E=require $(GO) test -race -count=1 ./...
	# the full-size concurrency test (scaled down under -race)
	$(GO) test -count=1 -run Concurrent ./internal/registry/

test-unit:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN) .build

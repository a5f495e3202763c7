# Newcomer entry points: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
BIN      := bin
REGISTRY ?= ./registry

.PHONY: sample pebble all build demo test test-stress serve build-all-arch test-launch test-release test-appliances test-unit vet fmt-check deps minio minio-start minio-stop bench-s3 clean bench-catalog

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/publish ./cmd/edgeproxy

# The main job end to end on the embedded default: build the nginx
# appliance (distrobuilder, root), publish it into ./registry, show it, and
# serve it over HTTPS with edgeproxy (Ctrl-C stops it).
demo: build
	@scripts/install-distrobuilder.sh
	$(BIN)/publish build nginx --variant default --compression gzip-1
	$(BIN)/publish nginx --bucket $(REGISTRY)
	$(BIN)/publish list --bucket $(REGISTRY)
	$(BIN)/publish verify --bucket $(REGISTRY)
	$(BIN)/edgeproxy --bucket $(REGISTRY) --self-signed --quiet

# A tiny sample image (no distrobuilder needed: mksquashfs), published
# into ./registry.
sample: build
	$(GO) run ./tools/sampleimage -out .build/sample -name hello
	$(BIN)/publish hello --bucket $(REGISTRY) --metadata .build/sample/incus.tar.xz --rootfs .build/sample/rootfs.squashfs
	$(BIN)/publish list --bucket $(REGISTRY)

# What the tests need (Debian packages, distrobuilder): installed when run
# as root, quick when already there; otherwise one line says what is
# missing. `make test` and `make demo` run it themselves.
deps:
	@scripts/install-deps.sh

# The whole suite: format and vet checks, then every test with the race
# detector. Real clients and a real MinIO must be there (REGISTRY_E2E=require
# turns a missing incus, lxc or MinIO into a failure); the tests start their
# own MinIO servers from the pinned binary.
test: deps fmt-check vet minio pebble
	MINIO_BIN=$$(scripts/minio.sh install) PEBBLE_BIN=$(PEBBLE_DIR)/pebble REGISTRY_E2E=require $(GO) test -race -count=1 -timeout 20m ./...
	# the full-size concurrency test (scaled down under -race)
	$(GO) test -count=1 -run Concurrent ./internal/registry/

# The whole `make test` with two CPU hogs beside it (stress-ng --cpu 2):
# the suite must pass on a small, busy machine. RUNS=3 runs it three times
# in a row.
test-stress: deps
	RUNS=$${RUNS:-1} scripts/test-stress.sh

# Terraform (terraform/), offline: fmt, init, validate and `terraform test`
# (mocked provider), then the MinIO-applicable subset applied to a MinIO,
# published to with the publish binary, verified and destroyed. Needs the
# terraform CLI and the hashicorp/aws provider under TF_PLUGIN_DIR (a
# filesystem-mirror layout); says so in one line and passes without them.
TF_PLUGIN_DIR ?= /opt/tf-plugins
.PHONY: test-terraform
test-terraform: minio
	@if ! command -v terraform >/dev/null || ! ls -d $(TF_PLUGIN_DIR)/registry.terraform.io/hashicorp/aws/*/linux_amd64 >/dev/null 2>&1; then \
		echo "test-terraform: skipped: terraform not on PATH or no hashicorp/aws provider under $(TF_PLUGIN_DIR)"; \
	else \
		MINIO_BIN=$$(scripts/minio.sh install) TF_PLUGIN_DIR=$(TF_PLUGIN_DIR) REGISTRY_TERRAFORM=1 REGISTRY_E2E=require \
			$(GO) test -count=1 -timeout 10m -v -run '^TestTerraform(CLI|MinIO)$$' ./terraform/; \
	fi

# The pinned Pebble ACME test server (edgeproxy's ACME test), built once.
PEBBLE_VERSION := v2.10.1
PEBBLE_DIR := $(HOME)/.cache/appliance-registry/pebble-$(PEBBLE_VERSION)
pebble:
	@test -x $(PEBBLE_DIR)/pebble || GOBIN=$(PEBBLE_DIR) $(GO) install github.com/letsencrypt/pebble/v2/cmd/pebble@$(PEBBLE_VERSION)

# Appliances (appliances/NAME): build with distrobuilder (installed by
# scripts/install-distrobuilder.sh) into .build/NAME/ARCH.
APPLIANCES := $(notdir $(patsubst %/,%,$(dir $(wildcard appliances/*/appliance.yaml))))
COMPRESSION ?= xz
build-%: build
	$(BIN)/publish build $* --compression $(COMPRESSION)
build-all-arch: build
	$(BIN)/publish build $(APPLIANCES) --arch amd64,arm64 --compression $(COMPRESSION)

# Serve ./registry over HTTPS with a kept self-signed certificate.
serve: build
	$(BIN)/edgeproxy --bucket $(REGISTRY) --self-signed

# The daemon targets below (test-launch, test-release, test-appliances,
# test-cloud, test-vm) build the repository's appliances into one shared
# build folder, APPLIANCE_E2E_BUILDS, with gzip-1 compression and one
# distrobuilder cache, APPLIANCE_BUILD_CACHE. The folder is kept: builds
# are reproducible and `publish build` and `publish release` skip an
# appliance whose inputs did not change, so each appliance is built once
# per run of them all (and not at all when unchanged since the last run);
# a test that changes an appliance works on a copy.
# One Incus daemon per host: each target holds /tmp/incusd.lock while its
# tests run, with `flock -o` so that the daemon a test starts does not
# inherit the lock (a test killed at its deadline would leave the lock
# held by its orphaned daemon, and every other daemon target waiting).
APPLIANCE_E2E_BUILDS ?= $(or $(TMPDIR),/tmp)/appliance-e2e-builds
APPLIANCE_BUILD_CACHE ?= $(or $(TMPDIR),/tmp)/appliance-build-cache
export APPLIANCE_E2E_BUILDS APPLIANCE_BUILD_CACHE

# End to end with a real Incus daemon (root): nginx's whole workflow
# (build → MinIO → edgeproxy → incus launch → health check → second
# version), then each appliance launched and health-checked.
test-launch: build minio
	MINIO_BIN=$$(scripts/minio.sh install) flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=1 REGISTRY_E2E=require $(GO) test -count=1 -timeout 30m -v -run '^TestLaunchNginxEndToEnd$$' ./e2e/
# publish release through a real Incus daemon (one at a time on a host:
# flock): gate, publish, `incus image refresh` by delta, failed gate
# publishes nothing; release --all (every appliance through the gate, then
# nothing new); redis data on its volume survives `incus rebuild`; the
# stack gate (miniflux gated with postgresql wired in; a postgresql whose
# hook is broken refused for breaking the published miniflux, and failing
# miniflux's gate on relation db, nothing published either time). It
# builds whatever is due of every appliance and variant into the shared
# build folder (all of them on a fresh machine): a generous deadline.
test-release: build
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=release REGISTRY_E2E=require $(GO) test -count=1 -timeout 90m -v -run '^TestRelease(RefreshThroughIncusDaemon|AllThroughIncusDaemon|StackThroughIncusDaemon)$$' ./e2e/
# Deltas from the last versions with a real Incus daemon (small sample
# images, no build): a host holding v1 refreshes to v3 by the v1→v3 delta,
# one holding v2 by v2→v3, one holding two bases of a product by both; a
# host holding a VM image refreshes it by the VM disk delta (no VM runs).
# One daemon per machine: flock.
.PHONY: test-deltas
test-deltas: build
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=1 REGISTRY_E2E=require $(GO) test -count=1 -timeout 15m -v -run '^Test(DeltaDepth|VMDelta)ThroughIncusDaemon$$' ./e2e/
# Every appliance (and one written by `publish new` on the bookworm base)
# built, launched and health-checked. The builds are made before the
# Incus daemon lock is taken (one daemon per machine).
test-appliances: build minio
	$(BIN)/publish build $(APPLIANCES) --variant default --build-dir $(APPLIANCE_E2E_BUILDS) --compression gzip-1 --cache-dir $(APPLIANCE_BUILD_CACHE)
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=all REGISTRY_E2E=require $(GO) test -count=1 -timeout 60m -v -run '^TestLaunchEveryAppliance$$' ./e2e/
# The stack of issue 23 with a real Incus daemon: postgresql, miniflux
# and tls-proxy built (kept in APPLIANCE_E2E_BUILDS, before the lock),
# published into a registry served by edgeproxy, launched and wired by the
# Ansible role (ansible/) run with Debian 13's Ansible
# (scripts/install-ansible.sh: a trixie root in the cache); HTTPS through
# the proxy reads the database, a second run changes nothing, the README's
# pipe wires a second pair.
.PHONY: test-stack
STACK_APPLIANCES := postgresql miniflux tls-proxy
test-stack: build
	scripts/install-ansible.sh
	$(BIN)/publish build $(STACK_APPLIANCES) --variant default --build-dir $(APPLIANCE_E2E_BUILDS) --compression gzip-1 --cache-dir $(APPLIANCE_BUILD_CACHE)
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=stack REGISTRY_E2E=require $(GO) test -count=1 -timeout 60m -v -run '^TestStackThroughAnsible$$' ./e2e/
# The cloud variant (cloud-init) of nginx and redis with a real Incus
# daemon: user-data configures the site and the password; without it, the
# same defaults. One daemon per machine: flock.
.PHONY: test-cloud test-vm
test-cloud: build
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=1 REGISTRY_E2E=require $(GO) test -count=1 -timeout 60m -v -run '^TestLaunchCloudVariant$$' ./e2e/
# nginx as a VM: publish build --vm makes a bootable UEFI disk (no
# mounts), publish puts it beside the container image, and QEMU (KVM or
# TCG) boots it with OVMF until the health check passes through a
# forwarded port. No Incus daemon.
test-vm: build
	REGISTRY_VM=1 REGISTRY_E2E=require $(GO) test -count=1 -timeout 60m -v -run '^TestVMBootsAndServes$$' ./e2e/
test-%: build
	flock -o /tmp/incusd.lock env REGISTRY_LAUNCH=all REGISTRY_E2E=require $(GO) test -count=1 -timeout 30m -v -run '^TestLaunchEveryAppliance$$/^$*$$' ./e2e/

# Build (once, cached) the pinned MinIO server.
minio:
	@scripts/minio.sh install >/dev/null

# A MinIO for local use: `make minio-start`, then `source .build/minio/env`.
minio-start:
	scripts/minio.sh start .build/minio

minio-stop:
	scripts/minio.sh stop .build/minio

# publish (a built appliance with its digest record, and an arbitrary file) vs
# rclone vs a bare SDK multipart upload vs the SDK with publish's checks, 1 GiB to MinIO.
bench-s3: build minio
	$(GO) run ./bench/s3upload -publish $(BIN)/publish -size $${SIZE:-1073741824} -runs $${RUNS:-3}

test-unit:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN) .build

# Delta sizes between real nginx builds (distrobuilder, xz, root): a rebuild
# with unchanged inputs (same fingerprint), one changed file (≤ 0.2 %), one
# package added (≤ 3 %). Works on a copy of appliances/nginx.
.PHONY: bench-delta
bench-delta: build
	scripts/install-distrobuilder.sh
	$(GO) run ./bench/delta -publish $(BIN)/publish $(BENCH_DELTA_FLAGS)

# edgeproxy vs nginx vs Caddy (Debian packages) as TLS fronts of one MinIO:
# catalog JSON req/s; a 1 GiB file from a warm cache (edgeproxy's disk
# cache, nginx proxy_cache), one download and 8 at once; peak RSS with 256
# downloads.
.PHONY: bench-edgeproxy
bench-edgeproxy: build minio
	$(GO) run ./bench/edgeproxy -size $${SIZE:-1073741824} $(BENCH_FLAGS)

# The catalog at images.linuxcontainers.org's scale (~1,500 products × 3
# versions) and 10× larger: parse, merge, marshal, a publish commit on
# MinIO, list, verify --no-files, a mirror of the catalog alone, edgeproxy
# req/s (gzip on/off). MIRROR_MEM=1: the mirror memory benchmark instead
# (2 GiB root, ~20 MB catalog, peak RSS < 100 MB).
.PHONY: bench-catalog
bench-catalog: minio
	MINIO_BIN=$$(scripts/minio.sh install) $(GO) run ./bench/catalog $(if $(MIRROR_MEM),-mirror-mem) $(BENCH_FLAGS)

# Clear-signing and verifying a catalog document of 2 MB and of 120 MB (the
# 10× catalog): wall time and process CPU per operation (cpu-ms/op); then
# what signing costs a publish: the same publishes into a MinIO bucket with
# and without --signing-key, at 1×, 10× in one file and 10× in 64 files
# (wall, CPU, peak RSS), publish sign and verify --keyring.
.PHONY: bench-signing
bench-signing: minio
	$(GO) test -run '^$$' -bench . -benchtime $${BENCHTIME:-3x} ./internal/signing
	$(GO) test -run '^$$' -bench BenchmarkVerifiedCatalog -benchtime $${BENCHTIME:-3x} ./internal/edgeproxy
	MINIO_BIN=$$(scripts/minio.sh install) $(GO) run ./bench/catalog -signing $(BENCH_FLAGS)

# producerd developer entry points. Every Go target runs in EVERY Go module of the tree: the
# root module and any nested one (a directory holding go.mod, e.g. devbroker/clientgo-compat or
# bench/), except modules under testdata/ or hidden directories.
#
#   make test            go test -race -count=1 ./... in every module (CI runs this)
#   make lint            go vet + staticcheck in every module
#   make generate        go generate ./... in every module (installs protoc + plugins if missing)
#   make check           gofmt clean and `make generate` leaves tracked files unchanged
#   make bench           the side-by-side harness (bench/run.sh) against the real cluster
#   make bench-go        go test -bench in every module
#   make cluster-start   start the real RocketMQ test cluster (testinfra/rocketmq/cluster.sh)
#   make cluster-stop    stop it; also cluster-status, cluster-logs
#   make dev             go run ./cmd/producerd dev
#
# Integration tests find the cluster through internal/rmqtest (state file .rmq/cluster.json or
# $PRODUCERD_RMQ_STATE); without a cluster they skip, with CI=true they fail.
#
# Decision on the bench/ module: `make test` DOES include it. `go test` without -bench runs no
# Benchmark* functions, so only its Test* functions run; they must stay short (guard anything
# long with testing.Short() or an env var). Use SKIP_MODULES="./bench" to leave a module out.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= go

# ./ first, then nested modules in path order.
MODULES := $(filter-out $(SKIP_MODULES),$(shell find . -name go.mod -not -path '*/testdata/*' -not -path '*/.*/*' -not -path './bin/*' -printf '%h\n' 2>/dev/null | LC_ALL=C sort))

BIN := $(CURDIR)/bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go
PROTOC_GEN_GO_VERSION := v1.36.12
# v1.5.1: the version the committed *_grpc.pb.go files were generated with (its header names
# it, so another version would make `make check` fail). v1.6.x also resolves on Go 1.26.
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

TEST_FLAGS ?= -race -count=1
BENCH_FLAGS ?= -run '^$$' -bench . -benchmem
CLUSTER := bash testinfra/rocketmq/cluster.sh

# shell-quote TEXT (single quotes, embedded ones escaped)
squote = '$(subst ','\'',$(1))'

# each-module CMD[,LABEL]: run CMD in every module, report every failing one, fail at the end.
define each-module
	@failed=""; \
	for m in $(MODULES); do \
		printf '==> %s: %s\n' "$$m" $(call squote,$(or $(2),$(1))); \
		( cd "$$m" && $(1) ) || failed="$$failed $$m"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED in:$$failed" >&2; exit 1; fi
endef

.PHONY: test lint vet staticcheck generate tools check fmt-check bench bench-go cluster-start cluster-stop cluster-status cluster-logs dev modules

modules:
	@printf '%s\n' $(MODULES)

# WebAssembly strategies are compiled by wazero, which runs ~25x slower under -race: their
# tests skip under -race and run here once more without it.
test:
	$(call each-module,$(GO) test $(TEST_FLAGS) ./...)
	$(GO) test -count=1 ./host/wasm/... && $(GO) test -count=1 -run Wasm ./internal/e2e/ ./internal/simulate/

lint:
	$(call each-module,$(GO) vet ./... && $(GO) run $(STATICCHECK) ./...)

generate: tools
	$(call each-module,PATH="$(BIN):$$PATH" $(GO) generate ./...,PATH=bin:$$PATH $(GO) generate ./...)

# protoc from Debian (protobuf-compiler; libprotobuf-dev brings the well-known .proto files),
# the Go plugins into ./bin at pinned versions.
tools:
	@if ! command -v protoc >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "==> installing protoc (apt-get install protobuf-compiler libprotobuf-dev)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null || \
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null; }; \
		else \
			echo "protoc not found: install protobuf-compiler and libprotobuf-dev" >&2; exit 1; \
		fi; \
	fi
	@mkdir -p "$(BIN)"
	@if ! $(GO) version -m "$(BIN)/protoc-gen-go" 2>/dev/null | grep -q "mod.*$(PROTOC_GEN_GO_VERSION)"; then \
		echo "==> go install $(PROTOC_GEN_GO)@$(PROTOC_GEN_GO_VERSION)"; \
		GOBIN="$(BIN)" $(GO) install $(PROTOC_GEN_GO)@$(PROTOC_GEN_GO_VERSION); \
	fi
	@if ! $(GO) version -m "$(BIN)/protoc-gen-go-grpc" 2>/dev/null | grep -q "mod.*$(PROTOC_GEN_GO_GRPC_VERSION)"; then \
		echo "==> go install $(PROTOC_GEN_GO_GRPC)@$(PROTOC_GEN_GO_GRPC_VERSION)"; \
		GOBIN="$(BIN)" $(GO) install $(PROTOC_GEN_GO_GRPC)@$(PROTOC_GEN_GO_GRPC_VERSION); \
	fi

fmt-check:
	@files=$$(git ls-files -co --exclude-standard -- '*.go' | grep -v '/testdata/' | xargs -r gofmt -l); \
	if [ -n "$$files" ]; then echo "gofmt needed:" >&2; echo "$$files" >&2; exit 1; fi

# In a clean checkout (CI) this is `make generate && git diff --exit-code`; in a working tree
# with edits it flags only what generate itself changed.
check: fmt-check
	@before=$$(git diff --binary | sha256sum); \
	$(MAKE) --no-print-directory generate || exit 1; \
	if [ "$$(git diff --binary | sha256sum)" != "$$before" ]; then \
		git diff --stat >&2; echo "make generate changed tracked files: run it and commit the result" >&2; exit 1; \
	fi; \
	echo "check: ok (gofmt clean, generated code up to date)"

# make bench: the side-by-side harness (producerd vs the Java client and rocketmq-client-go
# on the real cluster; writes bench/results/RESULTS.md). make bench-go: the go test benchmarks.
bench:
	bash bench/run.sh

bench-go:
	@test -n "$$PRODUCERD_RMQ_STATE" -o -f .rmq/cluster.json || echo "note: no RocketMQ cluster running (make cluster-start); cluster benchmarks will skip" >&2
	$(call each-module,$(GO) test $(BENCH_FLAGS) ./...)

cluster-start:
	$(CLUSTER) start

cluster-stop:
	$(CLUSTER) stop

cluster-status:
	$(CLUSTER) status

cluster-logs:
	$(CLUSTER) logs

dev:
	$(GO) run ./cmd/producerd dev

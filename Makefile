# invoctl: `make run` starts a server with an embedded Postgres, `make test` runs the suite.
# Both create .venv and install what they need on first use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The `invoctl` distribution (stubs, client, SDK, CLI); the top level is `invoctl-server`.
PY_CLIENT := clients/python
PROTO_OUT := clients/python
PROTOS := $(wildcard protos/invoctl/v1/*.proto)
# The TypeScript client: its packages come from its package-lock.json (npm ci), and its
# stubs from protos/ through buf with the protoc-gen-es that npm installed.
TS := clients/typescript
TS_STAMP := $(TS)/node_modules/.installed
TS_GEN := $(BIN)/buf generate --template $(TS)/buf.gen.yaml

.DEFAULT_GOAL := help

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Both distributions, editable, in one pip run (so invoctl-server's `invoctl` requirement
# is this repository's, never an index's): invoctl (clients/python: stubs, client, SDK,
# CLI) and invoctl-server (the top level: the server), with the dev tools.
$(STAMP): pyproject.toml $(PY_CLIENT)/pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./$(PY_CLIENT) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install invoctl and invoctl-server with the dev tools.

$(TS_STAMP): $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund
	@touch $(TS_STAMP)

ts-deps: $(TS_STAMP) ## Install the TypeScript client's packages (npm ci).

run: $(STAMP) ## Start the server on 127.0.0.1:9090 with an embedded Postgres.
	$(BIN)/invoctl serve

test: $(STAMP) $(TS_STAMP) curl chromium ## Run the whole test suite against a real Postgres and real servers.
	$(BIN)/python -m pytest -n 2 --dist worksteal

# tests/e2e/test_http_readme_curl.py runs the README's curl lines with the real curl binary,
# which a fresh Debian machine may not have.
curl:
	@command -v curl >/dev/null || { \
	  echo "installing curl (the README's HTTP API lines are tested with it)"; \
	  apt-get install -y -q curl || { apt-get update -q && apt-get install -y -q curl; }; }

# The web console's tests drive a real headless Chromium: Debian's package (Playwright
# cannot download browsers here, and is never asked to). sudo when not root.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (the web console's browser tests use it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

lint: $(STAMP) $(TS_STAMP) ## Ruff, buf lint, tsc, and the generated-code check.
	$(BIN)/ruff check server clients/python tests bench
	$(BIN)/ruff format --check server clients/python tests bench
	$(BIN)/buf lint
	cd $(TS) && node node_modules/typescript/bin/tsc -p tsconfig.json --noEmit
	$(MAKE) --no-print-directory proto-check

proto: $(STAMP) $(TS_STAMP) ## Regenerate the Python and TypeScript stubs from protos/.
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) $(PROTOS)
	$(TS_GEN)

proto-check: $(STAMP) $(TS_STAMP) ## Fail when the committed stubs differ from what protos/ generates.
	@tmp=$$(mktemp -d); \
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find . -name '*.py*'); do \
	  cmp -s $$tmp/$$f $(PROTO_OUT)/$$f || { echo "stale: $(PROTO_OUT)/$$f (run make proto)"; rm -rf $$tmp; exit 1; }; \
	done; \
	$(TS_GEN) -o $$tmp/ts || { rm -rf $$tmp; exit 1; }; \
	diff -r -q $$tmp/ts/$(TS)/src/gen $(TS)/src/gen || { echo "stale: $(TS)/src/gen (run make proto)"; rm -rf $$tmp; exit 1; }; \
	rm -rf $$tmp; echo "generated code is current"

bench: $(STAMP) ## Measure throughput and latency; prints a table and writes bench/results.md.
	$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: help install ts-deps run test curl chromium lint proto proto-check bench

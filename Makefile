# Everything a fresh Debian 12 machine (as root) needs: `make demo` and `make test` each do all set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := postgresql-15 patroni etcd-server etcd-client haproxy redis-server rabbitmq-server \
                prometheus-alertmanager python3-venv python3-pip iproute2 faketime chromium
UV_VERSION := 0.9.30
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
VENV := $(CURDIR)/.venv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=

.PHONY: help setup apt uv venv lab-up lab-down lab-status demo test unit lint dev serve serve-stop

help:
	@echo "make demo   - install everything, start the local lab, run every area through Dagster"
	@echo "make test   - install everything, start the local lab, run the test suite"
	@echo "make dev    - serve the Dagster UI (dagster dev -w workspace.yaml)"
	@echo "make serve  - production topology: code server, daemon, webserver on PostgreSQL (regress serve)"

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

uv: $(UV)

venv: uv
	$(UV) sync --frozen --all-groups --python python3.11

setup: apt venv
	@$(VENV)/bin/python -c "from regression_pipelines.instance_home import ensure_dagster_home; ensure_dagster_home()"

lab-up: setup
	$(VENV)/bin/regress lab up

lab-down:
	$(VENV)/bin/regress lab down

lab-status:
	$(VENV)/bin/regress lab status

# The demo also runs the destructive failover area (a Patroni switchover) because its target is the local lab;
# citus_sharding is reported skipped where Citus is not installed.
demo: lab-up
	$(VENV)/bin/regress run --areas cache_coherence,ha_health,ha_failover,delta_cdf,etl_pipeline,citus_sharding \
	  --set ha_failover.allow_destructive=true --set ha_failover.mode=switchover

test: lab-up
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/pytest -q tests/unit

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

dev: setup
	$(VENV)/bin/dagster dev -w workspace.yaml

serve: lab-up
	$(VENV)/bin/regress serve

serve-stop:
	$(VENV)/bin/regress serve stop

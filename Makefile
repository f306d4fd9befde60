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
PYTEST_ARGS ?= --durations=25
# Citus (Debian has none): built from citus-<version>.tar.gz in REGRESS_CITUS_SOURCES, by default ../shared/vendor/citus
# when that exists; `make citus` without sources downloads the pinned release (regression_pipelines/matrix/citus_install.py).
CITUS_APT_PACKAGES := postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev \
                      libselinux1-dev libpam0g-dev autoconf flex bison
CITUS_DEFAULT_SOURCES := $(abspath $(CURDIR)/../shared/vendor/citus)
export REGRESS_CITUS_SOURCES ?= $(if $(wildcard $(CITUS_DEFAULT_SOURCES)/citus-*.tar.gz),$(CITUS_DEFAULT_SOURCES),)

.PHONY: help setup apt uv venv lab-up lab-down lab-status demo test unit lint dev serve serve-stop citus citus-apt \
        citus-if-sources

help:
	@echo "make demo   - install everything, start the local lab, run every area through Dagster"
	@echo "make test   - install everything, start the local lab, run the test suite"
	@echo "make dev    - serve the Dagster UI and daemon (dagster dev -w workspace.yaml; port 3000 + REGRESS_LAB_PORT_OFFSET)"
	@echo "make serve  - production topology: code server, daemon, webserver on PostgreSQL (regress serve)"
	@echo "make citus  - build the pinned Citus privately (cached; REGRESS_CITUS_SOURCES or the release download)"

# $(call apt_install,PACKAGES): install those of PACKAGES that are missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing; \
	fi
endef

apt:
	$(call apt_install,$(APT_PACKAGES))

citus-apt:
	$(call apt_install,$(CITUS_APT_PACKAGES))

# Private install per version, cached outside the clone (REGRESS_CITUS_CACHE); a second run only checks the archive.
citus: setup citus-apt
	$(VENV)/bin/python -m regression_pipelines.matrix.citus_install

# What `make test` and `make demo` do: build Citus when a source is at hand, else say why Citus will be skipped.
citus-if-sources: setup
	@if [ -n "$$REGRESS_CITUS_SOURCES" ]; then \
	  $(MAKE) --no-print-directory citus; \
	else \
	  echo "citus: not built (no REGRESS_CITUS_SOURCES, no $(CITUS_DEFAULT_SOURCES)): the lab runs a cached build if" \
	       "there is one, else Citus tests and the area are skipped; make citus downloads the release"; \
	fi

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

uv: $(UV)

venv: uv
	$(UV) sync --frozen --all-groups --python python3.11

setup: apt venv
	@$(VENV)/bin/python -c "from regression_pipelines.instance_home import ensure_dagster_home; ensure_dagster_home()"

lab-up: setup citus-if-sources
	$(VENV)/bin/regress lab up

lab-down:
	$(VENV)/bin/regress lab down

lab-status:
	$(VENV)/bin/regress lab status

# The demo also runs the destructive failover area (a Patroni switchover) because its target is the local lab;
# citus_sharding runs on the lab's Citus when one was built (citus-if-sources), else it is reported skipped.
demo: lab-up
	$(VENV)/bin/regress run --areas cache_coherence,ha_health,ha_failover,delta_cdf,etl_pipeline,citus_sharding \
	  --set ha_failover.allow_destructive=true --set ha_failover.mode=switchover

test: lab-up
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/pytest -q tests/unit

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# `dagster dev` rather than `dg dev`: dg dev (dagster-dg-cli) runs the same webserver and daemon but expects a dg
# project layout ([tool.dg], a defs/ tree of components); this code location is a classic Definitions object
# loaded through workspace.yaml, which `dagster dev -w` serves as is (its SupersessionWarning is harmless).
# Default signal handling, so SIGTERM (to make or to dagster dev) stops it cleanly even from a shell that
# ignores SIGTERM; `exec` makes dagster dev make's direct child, which make signals when it is terminated.
DEV_PORT ?= $(shell echo $$((3000 + $${REGRESS_LAB_PORT_OFFSET:-0})))
dev: setup
	exec env --default-signal=INT,TERM $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DEV_PORT)

serve: lab-up
	$(VENV)/bin/regress serve

serve-stop:
	$(VENV)/bin/regress serve stop

# kpexporter — the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (virtualenv, Python packages, Debian's prometheus for promtool and
# the real server the end-to-end tests scrape with) is installed here on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help demo test lint typecheck unit e2e check-metrics bench fuzz soak clean deps promtool

help:
	@echo "make demo    run the exporter against the built-in simulated kube-proxy"
	@echo "make test    lint, type-check and run the whole test suite (installs what it needs)"
	@echo "make bench   benchmarks (read path, poll cycle, many targets, memory, render)"
	@echo "make fuzz    run the atheris fuzzers (FUZZ_SECONDS per target, default 600)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,kubernetes]'
	rm -f $(VENV)/.installed-* && touch $@

deps: $(STAMP)

# promtool 2.42 and prometheus come from Debian's `prometheus` package; alertmanager/amtool
# from `prometheus-alertmanager`.
promtool:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
	  echo "installing Debian's prometheus (promtool + server) ..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus >/dev/null; \
	fi
	@promtool --version 2>&1 | head -1

demo: deps
	$(BIN)/kpexporter demo

lint: deps
	$(BIN)/ruff check kpexporter tests benchmarks

typecheck: deps
	$(BIN)/mypy kpexporter

unit: deps promtool
	$(BIN)/pytest -q -p no:cacheprovider -m "not e2e"

e2e: deps promtool
	$(BIN)/pytest -q -p no:cacheprovider -m e2e

test: deps promtool lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

bench: deps
	$(BIN)/python benchmarks/run_all.py

fuzz: deps
	$(BIN)/pip install --quiet atheris
	$(BIN)/python benchmarks/../tests/fuzz/run_fuzz.py --seconds $${FUZZ_SECONDS:-600}

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

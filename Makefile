# kpexporter — the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (virtualenv, Python packages, Debian's prometheus for promtool and
# the real server the end-to-end tests scrape with) is installed here on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help demo test lint typecheck unit e2e check-metrics bench fuzz soak clean deps promtool
.PHONY: lint-deploy lock rules dashboards

help:
	@echo "make demo    run the exporter against the built-in simulated kube-proxy"
	@echo "make test    lint, type-check and run the whole test suite (installs what it needs)"
	@echo "make bench   benchmarks (read path, poll cycle, many targets, memory, render)"
	@echo "make fuzz    run the atheris fuzzers (FUZZ_SECONDS per target, default 600)"
	@echo "make soak    time-compressed hours of a flapping and a restarting kube-proxy; memory"
	@echo "             and fds must stay flat (SOAK_HOURS, default 2, at SOAK_TIME_SCALE 120: ~1 min)"
	@echo "make check-metrics  promtool check metrics on a check -o prometheus page from the"
	@echo "             simulator (K8S_VERSION, default 1.33)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,kubernetes]'
	rm -f $(VENV)/.installed-* && touch $@

deps: $(STAMP)
	@: # the virtualenv is up to date

# The real parts the tests run against, from Debian: promtool 2.42 and the prometheus server
# (`prometheus`), Alertmanager 0.25 (`prometheus-alertmanager`, binary prometheus-alertmanager),
# and chromium for the browser test of the exporter's own page.
SYSTEM_BINS := promtool prometheus prometheus-alertmanager chromium
promtool:
	@missing=""; for b in $(SYSTEM_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's prometheus, prometheus-alertmanager, chromium (missing:$$missing) ..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager chromium >/dev/null; \
	fi
	@promtool --version 2>&1 | head -1

demo: deps
	@$(BIN)/kpexporter demo

lint: deps
	$(BIN)/ruff check kpexporter tests benchmarks

typecheck: deps
	$(BIN)/mypy kpexporter

unit: deps promtool
	$(BIN)/pytest -q -p no:cacheprovider -m "not e2e"

e2e: deps promtool
	$(BIN)/pytest -q -p no:cacheprovider -m e2e

# checkov has many dependencies of its own: it lives in its own virtualenv.
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $@

lint-deploy: deps $(CHECKOV_VENV)/.installed
	CHECKOV=$(CHECKOV_VENV)/bin/checkov sh deploy/checkov.sh

# The image's lock file (hashes), from pyproject.toml and deploy/image/requirements.in.
lock: deps
	$(BIN)/uv pip compile pyproject.toml deploy/image/requirements.in --extra kubernetes \
	  --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --custom-compile-command "make lock" -o requirements.lock

# Re-render the committed rules, dashboards (also as Nightingale JSON) and the manifests
# generated from them (defaults).
rules: deps
	$(BIN)/kpexporter rules -o alerts
	$(BIN)/kpexporter rules --format nightingale -o alerts/nightingale
	promtool check rules alerts/*.yaml && promtool test rules alerts/tests/*.yaml
dashboards: deps
	$(BIN)/kpexporter dashboards -o dashboards
	$(BIN)/kpexporter dashboards --format nightingale -o dashboards/nightingale
	$(BIN)/python deploy/kubernetes/generate.py

test: deps promtool lint typecheck lint-deploy
	$(BIN)/pytest -q -p no:cacheprovider

bench: deps
	$(BIN)/python benchmarks/run_all.py

fuzz: deps
	$(BIN)/pip install --quiet atheris
	$(BIN)/python benchmarks/../tests/fuzz/run_fuzz.py --seconds $${FUZZ_SECONDS:-600}

soak: deps
	$(BIN)/python benchmarks/soak.py --hours $${SOAK_HOURS:-2} --time-scale $${SOAK_TIME_SCALE:-120}

# One poll of a simulated kube-proxy, written as serve's /metrics page, checked by promtool:
# it must parse, and only kube-proxy's own pass-through names (e.g. gauges named *_total,
# as kube-proxy writes them) may draw lint remarks.
check-metrics: deps promtool
	@set -e; dir=$$(mktemp -d); \
	$(BIN)/kpexporter simulate --healthz-port 0 --metrics-port 0 \
	  --k8s-version $${K8S_VERSION:-1.33} >$$dir/sim 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; rm -rf $$dir' EXIT; \
	for i in $$(seq 100); do grep -q '^control:' $$dir/sim && break; sleep 0.1; done; \
	$(BIN)/kpexporter check -o prometheus --node node-0 \
	  --healthz-url "$$(sed -n 's/^healthz: //p' $$dir/sim)" \
	  --metrics-url "$$(sed -n 's/^metrics: //p' $$dir/sim)" >$$dir/page; \
	rc=0; promtool check metrics <$$dir/page >$$dir/lint 2>&1 || rc=$$?; \
	if [ $$rc != 0 ] && [ $$rc != 3 ]; then cat $$dir/lint; exit $$rc; fi; \
	if grep -vE '^(kubeproxy_|rest_client_|process_|go_)' $$dir/lint; then exit 1; fi; \
	echo "promtool check metrics: $$(grep -c '^# TYPE' $$dir/page) families parse; no lint" \
	  "problem in kpexporter's own; kube-proxy's own names as scraped:"; \
	sed 's/^/  /' $$dir/lint

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

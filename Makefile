# One entry point for set-up, demo and tests. Everything is installed by these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUILD := .build
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/netmagic-netfilter-$(VERSION).tar.gz
SOURCES := $(shell git ls-files plugins roles playbooks meta docs galaxy.yml README.md CHANGELOG.rst changelogs 2>/dev/null)
# Docs and changelog tools live in their own venv (their pins differ from the playbooks' venv).
DOCS_BIN := $(BUILD)/venv-docs/bin

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1

.PHONY: deps venv collection test unit coverage sanity matrix lint changelog docs docs-test release release-test integration demo bench clean

deps:
	./scripts/install-deps.sh

$(BIN)/.installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/dev.txt
	touch $@

venv: deps $(BIN)/.installed

$(TARBALL): $(SOURCES) $(BIN)/.installed
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist .

$(COLLECTIONS)/ansible_collections/netmagic/netfilter/MANIFEST.json: $(TARBALL)
	$(BIN)/ansible-galaxy collection install --force --no-deps -p $(COLLECTIONS) $(TARBALL)

collection: venv $(COLLECTIONS)/ansible_collections/netmagic/netfilter/MANIFEST.json

$(BIN)/.lint-installed: requirements/lint.txt $(BIN)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/lint.txt
	touch $@

$(DOCS_BIN)/.installed: requirements/docs.txt
	$(PYTHON) -m venv $(BUILD)/venv-docs
	$(DOCS_BIN)/pip install -q --disable-pip-version-check -r requirements/docs.txt
	touch $@

# Headless Chromium renders the docs site for tests/docs.
/usr/bin/chromium:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# ansible-test units on the pinned ansible-core (no root needed).
unit: venv coverage
	./scripts/units.sh

# Line coverage of module_utils by the unit tests (which need no root); below 90 % fails.
coverage: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/unit --cov=ansible_collections.netmagic.netfilter.plugins.module_utils \
		--cov-report=term --cov-fail-under=90

# Root tests: two at a time (most wait on programs and packets), then those marked alone.
ROOT_TESTS = NETMAGIC_NO_SKIPS=1 $(BIN)/pytest -n 2 -m "not alone" $(1) && NETMAGIC_NO_SKIPS=1 $(BIN)/pytest -m alone $(1)

integration: collection
	$(call ROOT_TESTS,tests/integration)

sanity: venv
	./scripts/sanity.sh

# Sanity and unit tests on each supported ansible-core release and its Python.
matrix: venv
	./scripts/matrix.sh

changelog: $(DOCS_BIN)/.installed
	PATH=$(CURDIR)/$(DOCS_BIN):$$PATH ./scripts/changelog.sh

lint: collection $(BIN)/.lint-installed changelog
	PATH=$(CURDIR)/$(BIN):$$PATH NO_COLOR=1 ansible-lint

docs: collection $(DOCS_BIN)/.installed
	./scripts/docs.sh

docs-test: docs /usr/bin/chromium
	$(DOCS_BIN)/pytest -p no:cacheprovider tests/docs

release: $(TARBALL)
	@echo $(TARBALL)

# The tarball installed into an empty collections path, its playbook run on lab hosts (root).
release-test: venv
	NETMAGIC_NO_SKIPS=1 $(BIN)/pytest tests/release

test: collection matrix coverage lint docs-test
	$(call ROOT_TESTS,--durations=15 tests/integration tests/release)
	./scripts/molecule.sh

demo: collection
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

bench: collection
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

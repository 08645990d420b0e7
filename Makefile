# One entry point for set-up, demo and tests. Everything is installed by these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUILD := .build
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/netmagic-netfilter-$(VERSION).tar.gz
SOURCES := $(shell git ls-files plugins roles playbooks meta galaxy.yml README.md 2>/dev/null)

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1

.PHONY: deps venv collection test unit sanity integration demo clean

deps:
	./scripts/install-deps.sh

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

venv: deps $(BIN)/.installed

$(TARBALL): $(SOURCES) $(BIN)/.installed
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist .

$(COLLECTIONS)/ansible_collections/netmagic/netfilter/MANIFEST.json: $(TARBALL)
	$(BIN)/ansible-galaxy collection install --force --no-deps -p $(COLLECTIONS) $(TARBALL)

collection: venv $(COLLECTIONS)/ansible_collections/netmagic/netfilter/MANIFEST.json

unit: collection
	$(BIN)/pytest tests/unit

integration: collection
	$(BIN)/pytest tests/integration

sanity: venv
	./scripts/sanity.sh

test: collection sanity
	$(BIN)/pytest tests/unit tests/integration
	./scripts/molecule.sh

demo: collection
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

clean:
	rm -rf $(BUILD)

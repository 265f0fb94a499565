# The commands a person runs more than once. `make run` and `make test` are the two that matter.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := deploy/local/stack.sh
SERVICES := deploy/local/services.sh
PACKAGES := shared services/intake services/router services/sla services/feedback services/console
PACKAGES_PATH := $(shell echo $(PACKAGES) | tr ' ' :)
PYTEST_ARGS ?=

.PHONY: help install k8s-tools console-test-tools k8s-render run stop logs status test test-unit lint fmt bench bench-e2e chaos reset lock stack-start stack-stop key token user demo outbox dlq mail train screenshots

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation $(addprefix -e ,$(PACKAGES))
	touch $@

install: $(VENV)/.installed k8s-tools console-test-tools ## install Python packages, Kafka's jars, PostgreSQL, kustomize, the CRD schemas and axe-core (what is missing)
	$(STACK) install

k8s-tools: ## kustomize and the CRD schemas the manifest tests use (cached under .local/k8s-tools)
	@deploy/k8s/tests/install-tools.sh

console-test-tools: ## axe-core for the browser tests (pinned by tests/browser/node/package-lock.json, cached under .local/node); says when chromium is missing
	@tests/browser/node/install-tools.sh

k8s-render: k8s-tools ## print what an overlay applies: make k8s-render OVERLAY=dev|prod
	@test -n "$(OVERLAY)" || { echo "usage: make k8s-render OVERLAY=dev|prod"; exit 2; }
	@.local/k8s-tools/bin/kustomize build deploy/k8s/overlays/$(OVERLAY)

stack-start: install ## start Kafka and PostgreSQL only
	$(STACK) start

stack-stop: ## stop Kafka and PostgreSQL
	$(STACK) stop

run: stack-start ## start Kafka, PostgreSQL, the mailbox and the five services (console on :8005); returns when all are ready
	$(SERVICES) start

stop: ## stop the services, Kafka and PostgreSQL
	$(SERVICES) stop
	$(STACK) stop

status: ## what runs and whether it is ready
	@$(STACK) status
	@$(SERVICES) status

logs: ## follow every log
	@mkdir -p .local/logs
	tail -n 20 -F .local/logs/*.log .local/kafka/kafka.log .local/pg/postgres.log

test: stack-start ## the whole suite against the real Kafka and PostgreSQL
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.installed k8s-tools console-test-tools ## pure-logic tests only (no Kafka, no PostgreSQL)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

screenshots: stack-start ## the console's browser tests, saving the main screens to docs/screenshots/*.png
	CC_SCREENSHOTS=1 $(PY) -m pytest tests/browser -q $(PYTEST_ARGS)

# lint-imports reads the checked-out sources (not whatever the venv's editable installs point at);
# the layering contracts and why are in pyproject.toml, [tool.importlinter].
lint: $(VENV)/.installed ## ruff, the layering rules (import-linter), mypy --strict over shared/, services/ and bench/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=$(PACKAGES_PATH) $(VENV)/bin/lint-imports --no-logo --no-cache
	$(VENV)/bin/mypy shared/ccshared services bench

fmt: $(VENV)/.installed ## format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Retrain the router's classifier: the shipped corpus plus this deployment's corrections (read
# from ROUTER_DATABASE_URL if reachable), per-class figures printed, the new version stored in
# ROUTER_CLASSIFIER_DIR (unset: the repo's router/classifier/models) and promoted only if it
# is not worse on the held-back slice. TRAIN_ARGS: --no-corrections, --force, --dir DIR.
train: $(VENV)/.installed ## retrain the router's classifier (corpus + corrections); promote if not worse
	PYTHONPATH=$(PACKAGES_PATH) $(PY) -m router.classifier.train $(TRAIN_ARGS)

bench: stack-start ## benchmarks under bench/ (figures printed and written to bench/results/)
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	$(PY) -m bench

bench-e2e: stack-start ## the end-to-end benchmark only (BENCH_E2E_SECONDS, BENCH_E2E_RATE, ...)
	$(PY) -m bench e2e

chaos: stack-start ## kill -9 each service, Kafka, PostgreSQL under load; prove nothing lost or doubled
	$(PY) -m bench chaos

reset: ## stop everything and delete local data (keeps downloaded jars and the venv)
	-$(SERVICES) stop
	$(STACK) reset
	rm -rf .local/logs .local/run .local/mail

lock: ## re-resolve requirements.lock (whole workspace) from requirements.in, then requirements-runtime.lock (the image's) at its versions
	$(VENV)/bin/uv pip compile requirements.in -o requirements.lock --python-version 3.11
	$(VENV)/bin/uv pip compile requirements-runtime.in -o requirements-runtime.lock --python-version 3.11 -c requirements.lock

token: $(VENV)/.installed ## print a UI user token (dev key, or CC_TOKEN_PRIVATE_KEY_FILE): make token SUB=amy ROLE=agent|supervisor
	@test -n "$(SUB)" -a -n "$(ROLE)" || { echo "usage: make token SUB=<agent or user id> ROLE=agent|supervisor"; exit 2; }
	@CC_DEVELOPMENT="$${CC_DEVELOPMENT:-1}" $(PY) -m router.tokens issue --sub "$(SUB)" --role "$(ROLE)"

# The console's own command-line tool (python -m console.users: also set-password, list); the
# password is made at random and printed once. CONSOLE_DATABASE_URL: the database (default the
# local stack's); outside development CONSOLE_TOKEN_PRIVATE_KEY too (the console's settings).
user: $(VENV)/.installed ## create a console user, password printed once: make user NAME=amy ROLE=agent|supervisor [AGENT=<router agent id, default NAME>]
	@test -n "$(NAME)" -a -n "$(ROLE)" || { echo "usage: make user NAME=<user id> ROLE=agent|supervisor [AGENT=<router agent id>]"; exit 2; }
	@CC_DEVELOPMENT="$${CC_DEVELOPMENT:-1}" $(PY) -m console.users create "$(NAME)" --role "$(ROLE)"$(if $(AGENT), --agent "$(AGENT)")

demo: $(VENV)/.installed ## load a working set into the running `make run` stack: a supervisor and three agents (tokens and console passwords printed), an intake key, the sample contacts
	CC_DEVELOPMENT="$${CC_DEVELOPMENT:-1}" $(PY) deploy/local/demo.py $(ARGS)

mail: $(VENV)/.installed ## e-mail the local services sent (the mailbox `make run` starts): make mail [ARGS="show N"]
	@$(PY) deploy/local/mailbox.py --dir "$${CC_LOCAL_DIR:-.local}/mail" $(if $(ARGS),$(ARGS),list)

key: $(VENV)/.installed ## create an intake API key: make key NAME=telephony CHANNELS=phone,email [REGION=US]
	@test -n "$(NAME)" -a -n "$(CHANNELS)" || { echo "usage: make key NAME=<integration> CHANNELS=phone,email,chat,social [REGION=US]"; exit 2; }
	$(PY) -m intake.cli keys create --name "$(NAME)" --channels "$(CHANNELS)"$(if $(REGION), --region "$(REGION)")

# A service's database and Kafka: its own <SERVICE>_DATABASE_URL / <SERVICE>_KAFKA_BOOTSTRAP /
# <SERVICE>_KAFKA_TOPIC_PREFIX when set, else the local stack's (one database per service).
SERVICE_ENV = $(shell echo '$(SERVICE)' | tr a-z A-Z)
SERVICE_DB = $${$(SERVICE_ENV)_DATABASE_URL:-postgresql://contactcenter:contactcenter@127.0.0.1:$${CC_PG_PORT:-55432}/$(SERVICE)}
SERVICE_KAFKA = --bootstrap "$${$(SERVICE_ENV)_KAFKA_BOOTSTRAP:-127.0.0.1:$${CC_KAFKA_PORT:-19092}}" --topic-prefix "$${$(SERVICE_ENV)_KAFKA_TOPIC_PREFIX:-}"
CHECK_SERVICE = case "$(SERVICE)" in intake|router|sla|feedback) ;; *) echo "usage: make $@ SERVICE=intake|router|sla|feedback ARGS=\"...\""; exit 2 ;; esac

outbox: $(VENV)/.installed ## parked outbox rows: make outbox SERVICE=intake ARGS="list | show ID [--value] | republish ID.../--all | discard ID.../--all"
	@$(CHECK_SERVICE)
	@$(SERVICE_ENV)_DATABASE_URL="$(SERVICE_DB)" $(PY) -m ccshared.outbox_admin --service $(SERVICE) $(if $(ARGS),$(ARGS),list)

dlq: $(VENV)/.installed ## dead letters: make dlq SERVICE=router ARGS="list | show TOPIC [P:O...] [--value] | replay TOPIC P:O.../--all | discard TOPIC P:O.../--all"
	@$(CHECK_SERVICE)
	@$(PY) -m ccshared.dlq $(SERVICE_KAFKA) --service $(SERVICE) $(if $(ARGS),$(ARGS),list)

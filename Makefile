# One command per task. Everything installs into .venv from scratch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install tools kafka browser demo test lint format mypy unit all clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

# The console's front end (services/notify/console): DSFR, its chart package (the
# map's outlines) and axe-core, from the npm registry at the versions of
# package-lock.json. --ignore-scripts: DSFR's preinstall wants a scaffold we do not
# use. Node and npm come from Debian when missing.
NODE_STAMP := node_modules/.package-lock.json
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	else echo "missing npm: apt-get install nodejs npm (as root)"; exit 1; fi
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# NODE_STAMP is defined above: make expands a rule's prerequisites when it reads it.
install: $(STAMP) $(NODE_STAMP)

# The browser tests (tests/browser) drive Debian's chromium through Playwright's
# executable_path: no browser download.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "missing chromium: apt-get install chromium (as root)"; exit 1; fi

# Debian tools the tests call: promtool (prometheus), amtool (prometheus-alertmanager),
# kubectl, redis-cli (redis-tools: creates the local Redis Cluster). Installed with
# apt-get when missing and running as root.
TOOLS_PKGS := prometheus prometheus-alertmanager kubectl redis-tools
tools:
	@if command -v promtool >/dev/null && command -v amtool >/dev/null \
	    && command -v kubectl >/dev/null && command -v redis-cli >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(TOOLS_PKGS) >/dev/null; \
	else echo "missing promtool/amtool/kubectl/redis-cli: apt-get install $(TOOLS_PKGS) (as root)"; exit 1; fi

# Apache Kafka for the local stack (shared/kafkacluster.py): the broker's jars,
# version pinned in deploy/kafka/pom.xml, copied from Maven Central into
# .cache/kafka/libs (git-ignored). Java 17 and Maven come from Debian when missing.
KAFKA_LIBS := .cache/kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.fetched
KAFKA_PKGS := maven openjdk-17-jre-headless
$(KAFKA_STAMP): deploy/kafka/pom.xml
	@if command -v mvn >/dev/null && command -v java >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(KAFKA_PKGS) >/dev/null; \
	else echo "missing mvn/java: apt-get install $(KAFKA_PKGS) (as root)"; exit 1; fi
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	touch $@

kafka: $(KAFKA_STAMP)

# make demo BROKER=kafka: the same demo on a 3-node Apache Kafka cluster.
BROKER ?= tansu
demo: install $(if $(filter kafka,$(BROKER)),kafka)
	VIGIE_LOCAL_BROKER=$(BROKER) $(BIN)/vigie demo

test: install tools kafka browser
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check shared services vigie tests
	$(BIN)/ruff format --check shared services vigie tests

format: install
	$(BIN)/ruff format shared services vigie tests
	$(BIN)/ruff check --fix shared services vigie tests

mypy: install
	$(BIN)/mypy

all: lint mypy test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

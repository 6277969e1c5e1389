# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean java

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,spark]'
	touch $(STAMP)

# The main job: scan the bundled demo data set (4,000 cases of every kind, 2019–2026, all districts).
demo: $(STAMP)
	$(BIN)/casecheck scan cases/demo --out out/demo --as-of 2026-11-24 --period quarter --by district

lint: $(STAMP)
	$(BIN)/ruff check engine tests benchmarks
	$(BIN)/ruff format --check engine tests benchmarks

# Spark (its tests run in local mode) needs Java 17; installed from Debian when missing and possible.
java:
	@command -v java >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; } \
		|| { echo "Java 17 is needed for the Spark tests: apt-get install openjdk-17-jre-headless"; exit 1; }

test: lint java
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .benchmarks

# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

# The main job: scan the bundled demo data set (4,000 cases of every kind, 2019–2026, all districts).
demo: $(STAMP)
	$(BIN)/casecheck scan cases/demo --out out/demo --as-of 2026-11-24 --period quarter --by district

lint: $(STAMP)
	$(BIN)/ruff check engine tests benchmarks
	$(BIN)/ruff format --check engine tests benchmarks

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .benchmarks

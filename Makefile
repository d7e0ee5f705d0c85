# carecoach — the two commands a new user needs:
#   make demo   set up (runtime only) and stream the bundled demo call through the real service
#   make test   set up (with dev tools, test data and Debian packages) and run the test suite
# Both are idempotent: a second run skips what is already installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# Debian packages: espeak-ng (pyttsx3's voice for whispers), sox (regenerating test calls), and real
# English test audio with reference transcripts for the ASR word-error-rate tests, chromium (page tests,
# driven by Playwright) and postgresql (the replica store tests start a throwaway server on loopback).
DEBIAN_TEST_PACKAGES := espeak-ng sox asterisk-core-sounds-en-wav asterisk-core-sounds-en pocketsphinx-testdata chromium postgresql
DEBIAN_RUNTIME_PACKAGES := espeak-ng

.PHONY: demo test test-fast bench lint setup setup-dev debian-runtime debian-test serve clean

demo: setup
	$(BIN)/carecoach demo $(DEMO_ARGS)

serve: setup
	$(BIN)/carecoach serve

test: setup-dev
	$(BIN)/pytest -m "not benchmark" $(PYTEST_ARGS)

test-fast: setup-dev
	$(BIN)/pytest -m "not slow and not benchmark" $(PYTEST_ARGS)

# bench: ~10-12 min on 2 cores (load.py 8-10 of them); `make bench BENCH_ARGS=--quick` runs a ~3 min load benchmark.
bench: setup-dev
	$(BIN)/python benchmarks/asr.py
	$(BIN)/python benchmarks/load.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/phases.py

lint: setup-dev
	$(BIN)/ruff check voice dialog prompts tests benchmarks
	$(BIN)/mypy

setup: debian-runtime $(RUNTIME_STAMP)
setup-dev: debian-test $(DEV_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

debian-runtime:
	@deploy/debian-packages.sh $(DEBIAN_RUNTIME_PACKAGES)

debian-test:
	@deploy/debian-packages.sh $(DEBIAN_TEST_PACKAGES)

clean:
	rm -rf $(VENV) carecoach-data .pytest_cache .mypy_cache .ruff_cache

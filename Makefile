# modelyard: `make serve` runs the gateway on the default model, `make test` runs the suite.
# Both create .venv and install pinned dependencies (constraints.txt) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: serve test lint typecheck unit install dev clean-venv system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

LLAMA_CPP := scripts/build-llama-cpp.sh

# llama.cpp is compiled once, outside the clone (see scripts/build-llama-cpp.sh): the
# llama-server binary that engine workers run, and the shared libraries that
# llama-cpp-python loads (its own wheel is built with LLAMA_BUILD=OFF, so nothing compiles twice).
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt $(LLAMA_CPP)
	@echo "Installing modelyard and its pinned dependencies (the first run compiles llama.cpp: ~6-10 min on 2 cores)"
	$(PIP) install --quiet --upgrade pip==25.3
	$(PIP) install --quiet -c constraints.txt torch==2.13.0  # first: the CPU build, never CUDA
	PYTHON=$(BIN)/python bash $(LLAMA_CPP)
	PYTHON=$(BIN)/python bash $(LLAMA_CPP) --wheel "$$(bash $(LLAMA_CPP) --print-dir)-wheels"
	$(PIP) install --quiet -c constraints.txt --no-deps "$$(ls "$$(bash $(LLAMA_CPP) --print-dir)-wheels"/llama_cpp_python-*.whl)"
	$(PIP) install --quiet -c constraints.txt -e .
	bash $(LLAMA_CPP) --link-libs $(BIN)/python
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

serve: $(VENV)/.installed
	$(BIN)/modelyard serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Browser tests drive Debian's Chromium (never a downloaded browser build); the audit
# witness tests keep their key in a SoftHSM2 PKCS#11 token (Debian's softhsm2).
system-deps:
	@command -v chromium >/dev/null 2>&1 && test -e /usr/lib/softhsm/libsofthsm2.so || { \
	  echo "Installing Debian's chromium and softhsm2 for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium softhsm2 >/dev/null; }

unit: $(VENV)/.installed-dev system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean-venv:
	rm -rf $(VENV)

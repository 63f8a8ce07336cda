# modelyard: `make serve` runs the gateway on the default model, `make test` runs the suite.
# Both create .venv and install hash-pinned dependencies (requirements*.lock) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: serve test lint typecheck lockcheck lock unit install dev flower clean-venv system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

LLAMA_CPP := scripts/build-llama-cpp.sh

# Every Python distribution comes from a hash-pinned lock (requirements.lock for serving,
# requirements-dev.lock for the tests), installed with --require-hashes --no-deps: pip never
# resolves, and a file whose SHA-256 is not in the lock is refused. `make lock` regenerates
# them from constraints.txt; `make test` checks that nothing unpinned is installed.
#
# llama.cpp is compiled once, outside the clone (see scripts/build-llama-cpp.sh): the
# llama-server binary that engine workers run, and the shared libraries that
# llama-cpp-python loads (its own wheel is built with LLAMA_BUILD=OFF from the SHA-256-pinned
# sdist, without build isolation, so nothing compiles twice and no build tool is unpinned).
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock $(LLAMA_CPP)
	@echo "Installing modelyard and its hash-pinned dependencies (the first run compiles llama.cpp: ~6-10 min on 2 cores)"
	$(PIP) install --quiet --require-hashes --no-deps -r requirements.lock
	PYTHON=$(BIN)/python bash $(LLAMA_CPP)
	PYTHON=$(BIN)/python bash $(LLAMA_CPP) --wheel "$$(bash $(LLAMA_CPP) --print-dir)-wheels"
	$(PIP) install --quiet --no-deps "$$(ls "$$(bash $(LLAMA_CPP) --print-dir)-wheels"/llama_cpp_python-*.whl)"
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	bash $(LLAMA_CPP) --link-libs $(BIN)/python
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-dev.lock
	@touch $@

# Federated tuning runs Flower from a venv of its own (its pins clash with the gateway's:
# constraints-flower.txt says which), hash-pinned by requirements-flower.lock in the same way.
FLOWER := .venv-flower
$(FLOWER)/.installed: requirements-flower.lock
	$(PYTHON) -m venv $(FLOWER)
	$(FLOWER)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-flower.lock
	@touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev
flower: $(FLOWER)/.installed

serve: $(VENV)/.installed
	$(BIN)/modelyard serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.installed-dev $(FLOWER)/.installed
	$(BIN)/mypy
	$(BIN)/mypy --python-executable $(FLOWER)/bin/python src/modelyard/tune/federated/flower_app/fedlora

# Supply chain: every installed distribution is pinned, by version and hash, in the locks.
lockcheck: $(VENV)/.installed-dev $(FLOWER)/.installed
	$(BIN)/python scripts/lock.py --check
	$(FLOWER)/bin/python scripts/lock.py --flower --check

lock: $(VENV)/.installed-dev
	$(BIN)/python scripts/lock.py

# Browser tests drive Debian's Chromium (never a downloaded browser build); the audit
# witness tests keep their key in a SoftHSM2 PKCS#11 token (Debian's softhsm2).
system-deps:
	@command -v chromium >/dev/null 2>&1 && test -e /usr/lib/softhsm/libsofthsm2.so || { \
	  echo "Installing Debian's chromium and softhsm2 for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium softhsm2 >/dev/null; }

# The OIDC login tests run a real provider (oidc-provider, the certified Node.js
# implementation) from the npm registry, pinned by tests/oidc/package-lock.json.
OIDC_PROVIDER := tests/oidc/node_modules/.installed
$(OIDC_PROVIDER): tests/oidc/package.json tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
	@touch $@

unit: $(VENV)/.installed-dev $(FLOWER)/.installed system-deps $(OIDC_PROVIDER)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck lockcheck unit

clean-venv:
	rm -rf $(VENV) $(FLOWER)

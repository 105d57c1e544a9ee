# radiolens: two commands on a fresh machine.
#   make demo   set up .venv and run the main job on the embedded defaults
#   make test   set up .venv, then ruff, mypy (src/) and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.radiolens-installed

.PHONY: demo test lint typecheck pytest bench-labeller clean ui

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[all,scale,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/radiolens demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/pytest -q

# The labeller benchmark compares with medspaCy, which needs numpy<2: it gets its own venv.
.venv-bench/.installed: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -e ".[bench]"
	touch $@

bench-labeller: .venv-bench/.installed
	.venv-bench/bin/python bench/label_openi.py

clean:
	rm -rf $(VENV) .venv-bench build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# The study viewer (Cornerstone3D) is bundled once into src/radiolens/serve/static/viewer/
# and committed: users never run npm. `make ui` rebuilds it from the lock file; the output
# is byte-identical, so `make ui && git diff --exit-code src/radiolens/serve/static/viewer`
# checks that the committed bundle matches its sources. Needs Node 20+ and the npm registry.
UI_DIR := src/radiolens/serve/ui

ui:
	cd $(UI_DIR) && npm ci --no-audit --no-fund && node build.mjs

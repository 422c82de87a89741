# Two entry points: `make demo` runs the main job on built-in data, `make test` runs the suite.
# Both create .venv on first use (pip lists what it installs, so the minutes of installing are not
# silent). torch is pinned: the CPU wheel 2.13.0 is what these machines hold;
# an unpinned torch would pull several GB of CUDA packages.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

$(BIN)/.installed: pyproject.toml
	@echo "make: creating $(VENV) and installing $(TORCH) (CPU) and filterprune[all,dev] into it (minutes, once)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --progress-bar off $(TORCH)
	$(BIN)/pip install --progress-bar off -e ".[all,dev]"
	touch $@

.PHONY: install demo test lint format
install: $(BIN)/.installed

demo: install
	$(BIN)/filterprune demo $(ARGS)

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q $(ARGS)

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

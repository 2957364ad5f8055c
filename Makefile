# The two front doors: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: test lint typecheck pytest bench demo soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev,limits,redis,demo]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict cue_front
	$(BIN)/python -m pytest

# The long reliability runs (tests/soak): 10,000 events through gunicorn with faults, and an outage.
soak: $(STAMP)
	$(BIN)/python -m pytest tests/soak -m soak -s

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The demo store on http://127.0.0.1:$(PORT), with a DataCue emulator beside it (PORT+1, or any free
# port); with DATACUE_API_KEY and DATACUE_API_SECRET set, the real DataCue and no emulator. Ctrl-C stops both.
demo: $(STAMP)
	$(BIN)/python -m demo_store --port $(PORT)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

# EdgeLoop developer entry points. `make demo` and `make test` set up .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DIR ?= $(CURDIR)/.demo

.PHONY: setup demo test lint bench-db clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Until the desktop app lands (issue 8), the demo is the closed loop, headless, on a simulated
# fleet: release 1, drift, alert, retraining, staged deploy, recovery (about six minutes).
demo: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/edgeloop demo --headless --dir $(DEMO_DIR)

lint: setup
	$(BIN)/lint-imports

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench-db: setup
	$(BIN)/python -m bench.db_scale

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis

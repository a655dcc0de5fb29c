# EdgeLoop developer entry points. `make demo` and `make test` set up .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DIR ?= $(CURDIR)/.demo

.PHONY: setup demo demo-headless test lint bench-db bench-ui clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The desktop app on a fresh demo project with a simulated fleet running (a few minutes of
# setup first); with no display it says so and runs the headless closed loop instead.
demo: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/edgeloop demo --dir $(DEMO_DIR)

# The closed loop, headless: release 1, drift, alert, retraining, staged deploy, recovery.
demo-headless: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/edgeloop demo --headless --dir $(DEMO_DIR)

lint: setup
	$(BIN)/lint-imports

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench-db: setup
	$(BIN)/python -m bench.db_scale

bench-ui: setup
	$(BIN)/python -m bench.ui data-open --captures 1000000
	$(BIN)/python -m bench.ui stall

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis

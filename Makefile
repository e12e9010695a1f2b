# The verbs a newcomer needs. `make run` and `make test` work on a fresh Debian/Ubuntu
# machine with python3 (and python3-venv): each creates the virtualenv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install run demo stack test lint format generate bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,nvml]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP) ## serve the full simulated campus on 127.0.0.1:9640
	$(BIN)/gigawatt serve $(ARGS)

demo: $(STAMP) ## serve the one-building demo site, mitigated (README), a cycle every 5 s
	$(BIN)/gigawatt serve --preset demo --interval 5 --power-floor 0.9 --ramp-limit 50 $(ARGS)

stack: $(STAMP) ## the compose demo from local binaries on 127.0.0.1 (docs/scaling.md); Ctrl-C stops it
	$(BIN)/python deploy/stack.py $(ARGS)

test: $(STAMP) ## the whole test suite
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

generate: $(STAMP) ## rewrite generated files: docs/metrics.md, docs/alerts.md, rules, dashboards
	$(BIN)/gigawatt generate

bench: $(STAMP) ## campus cycle benchmark, side by side with prometheus_client
	$(BIN)/python bench/bench_cycle.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

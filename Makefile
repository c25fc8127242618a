# The two commands: `make run` (the whole local stack) and `make test` (the whole suite).
# Both create the environment first; nothing relies on what was installed by hand.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: run test env system-deps test-fast test-stack schemas bench clean

run: env
	$(PY) -m shared.localstack.run

test: env system-deps
	# Fast layers in parallel (each worker starts its own broker and database on free ports)...
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not e2e and not browser and not faults" -q
	# ...then the layers that start the whole stack, in one process (one stack).
	$(PY) -m pytest -m "e2e or browser or faults" -q

test-fast: env
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not integration and not e2e and not browser and not faults" -q

env: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

system-deps:
	bash scripts/system-deps.sh

schemas: env
	$(PY) -m shared.contracts.schemas --write

bench: env
	$(PY) bench/event_latency.py
	$(PY) bench/registration_throughput.py
	$(PY) bench/replay_fanout.py
	$(PY) bench/scaling.py

clean:
	rm -rf $(VENV) .tools test-artifacts

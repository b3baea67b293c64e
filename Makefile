# HMS Management Layer. `make run` and `make test` work on a fresh machine: they create the
# virtualenv and install the pinned packages first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed

.PHONY: install run stop status submit test test-unit test-launcher test-bench mutants bench bench-max-running bench-profile lint \
  constraints clean

install: $(INSTALLED)

# Bytecode is compiled once, at install: uv does not compile it, and where PYTHONDONTWRITEBYTECODE
# is set (as on this machine) every Airflow process, every task included, would otherwise compile
# each module it imports from source again.
$(INSTALLED): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt -c constraints.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# Ports and the crash-loop limit of `make run` (docs/operations.md): e.g. `make run API_PORT=8081
# BACKEND_PORT=8091`; the same with HMS_ in front in the environment (HMS_API_PORT=8081 make run).
STACK_SETTINGS = $(if $(API_PORT),--api-port $(API_PORT)) $(if $(BACKEND_PORT),--backend-port $(BACKEND_PORT)) \
  $(if $(METRICS_PORT),--metrics-port $(METRICS_PORT)) \
  $(if $(CRASH_LOOP_RESTARTS),--crash-loop-restarts $(CRASH_LOOP_RESTARTS)) \
  $(if $(CRASH_LOOP_SECONDS),--crash-loop-seconds $(CRASH_LOOP_SECONDS))
NOTHING_INSTALLED = echo "nothing is installed here yet (make run installs it): no stack is running"

## run: the whole stack in the foreground; a component that exits is restarted; Ctrl-C (or closing
## the terminal) stops everything
run: install
	$(PY) -m hms_stack run $(STACK_SETTINGS)

## stop: stop the stack of this folder, whoever started it and whatever happened to it
stop:
	@test -x $(PY) || { $(NOTHING_INSTALLED); exit 0; }
	$(PY) -m hms_stack stop

## status: each component of the running stack with its pid, uptime, restarts and ports
status:
	@test -x $(PY) || { $(NOTHING_INSTALLED); exit 1; }
	$(PY) -m hms_stack status

## submit: send a proposal (FILE=..., default the sample) to the running stack and follow it
submit: install
	$(PY) -m hms_stack submit $(FILE)

## test: lint, import contract, unused code, then the unit, DAG, workflow (dag.test), end-to-end and
## browser tests (starts and stops its own stack); the launcher's and the benchmark's tests, which
## start stacks of their own, are `make test-launcher` and `make test-bench` (CI runs all: .ci/run)
test: install chromium prometheus
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture
	$(PY) -m pytest -m "not stack and not bench" --durations=15

## test-launcher: `make run`, stop, status and supervision as people drive them, each test with a
## stack of its own (tests/stack, about 7 min)
test-launcher: install
	$(PY) -m pytest -m stack --durations=5

## test-bench: `make bench QUICK=1` end to end on stacks of its own (about 5 min)
test-bench: install
	$(PY) -m pytest -m bench --durations=5

## bench: every benchmark scenario side by side (QUICK=1 for a smoke run of a few minutes, which
## also runs max_running small); results, table and plots in bench-results/
bench: install
	$(PY) -m hms_bench $(if $(QUICK),--quick)

## bench-max-running: a burst on a fresh stack per value of [hms_management] max_running_proposals
## (VALUES=8,16,24,48; SIZE=500 proposals per burst); results in bench-results/max-running/
# (The values sit in a variable: in $(or …) each comma would start another argument.)
MAX_RUNNING_VALUES := 8,16,24,48
bench-max-running: install
	$(PY) -m hms_bench --only max_running --max-running $(or $(VALUES),$(MAX_RUNNING_VALUES)) --size burst=$(or $(SIZE),500) \
	  --out bench-results/max-running

## bench-profile: where an approved proposal's time and CPU go: each step's phases (cProfile in every
## task process) and the api-server by route (yappi), beside the floor DAG's (about 5 min); the tables
## and the raw profiles in bench-results/profile/
bench-profile: install
	$(PY) -m hms_bench.profile

## mutants: break one promise of the README at a time and check that a test notices (not in CI; a
## few minutes; LIVE=1 also runs each mutant's end-to-end tests, much slower)
mutants: install
	$(PY) tests/mutants.py $(if $(LIVE),--live)

## bench-desk: page times of the analysts' desk with 100,000 synthetic proposals (about 10 min);
## figures in bench-results/desk_pages.json
bench-desk: install
	$(PY) -m hms_bench.desk_pages

test-unit: install
	$(PY) -m pytest -m "not e2e"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture

## constraints: re-resolve the pinned set after changing requirements.txt
constraints:
	rm -rf $(VENV)-resolve && $(PYTHON) -m venv $(VENV)-resolve
	$(VENV)-resolve/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)-resolve/bin/uv pip install --quiet --python $(VENV)-resolve/bin/python -r requirements.txt
	( echo "# The exact resolved set of packages (from \`uv pip freeze\` of a venv installed from requirements.txt)."; \
	  echo "# Regenerate with \`make constraints\` after changing requirements.txt."; \
	  $(VENV)-resolve/bin/uv pip freeze --python $(VENV)-resolve/bin/python ) > constraints.txt
	rm -rf $(VENV)-resolve

clean:
	rm -rf $(VENV)

## test-distributed: the proposal orchestration's and the rate budgets' end-to-end suites on
## CeleryExecutor (PostgreSQL, Redis, two Celery workers drawing from one shared bucket), then the
## worker-loss test and the launcher's restarts of a Celery worker and of Redis; each starts and
## stops a stack of its own.
## E2E=tests/e2e runs every end-to-end suite there instead (about 20 min).
E2E ?= tests/e2e/test_proposal_orchestration.py tests/e2e/test_rate_budgets.py
test-distributed: install redis-server
	HMS_STACK=distributed $(PY) -m pytest $(E2E)
	HMS_STACK=distributed $(PY) -m pytest tests/distributed tests/stack/test_distributed_supervision.py -rP --durations=5

## run-distributed: `make run` on CeleryExecutor, with Redis and two Celery workers (`make stop` stops it)
run-distributed: install redis-server
	$(PY) -m hms_stack run --distributed $(STACK_SETTINGS) $(if $(REDIS_PORT),--redis-port $(REDIS_PORT))

## redis-server: Debian's Redis, the Celery broker of the distributed stack, installed when missing
redis-server:
	@command -v redis-server >/dev/null || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }

## test-chaos: a supervised stack loses a part of itself in the middle of a burst, one case at a time
## (scheduler, triggerer, api-server, dag-processor, HMS backend, PostgreSQL, all at once), and a load
## of 2,000 requests from 50 clients; figures in chaos-results.json (about 15 min)
test-chaos: install
	HMS_CHAOS=1 $(PY) -m pytest tests/chaos -rP --durations=10

## chromium: Debian's Chromium, the browser of the desk's browser tests (tests/browser), installed when
## missing; Playwright drives it (its own browser download is not reachable here)
chromium:
	@command -v chromium >/dev/null || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

## prometheus: Debian's Prometheus, which the metrics tests start to scrape a live stack (tests/e2e/test_metrics.py),
## installed when missing; the package's own service is not used
prometheus:
	@command -v prometheus >/dev/null || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

.PHONY: test-distributed run-distributed redis-server test-chaos chromium bench-desk prometheus

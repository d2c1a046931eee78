# Every target pulls in what it needs and can be run again safely.
# Students: `make demo` and `make test`. See README.md.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
IMPL   ?=

.PHONY: help setup broker broker-stop broker-restart queues cluster cluster-stop cluster-kill \
        cluster-start cluster-ctl test lint format \
        demo clean
# >>> author-only
.PHONY: grade student-edition bench
# <<< author-only

help:
	@echo "make setup        create .venv with everything the course needs"
	@echo "make demo         a narrated tour of the lessons and tasks on a real broker (IMPL=task: your code)"
	@echo "make test         the tests that must be green"
	@echo "make broker       find or start a broker; prints the export RABBITMQ_URL=... line"
	@echo "                  (RABBITMQ=4: RabbitMQ 4.x with the 4.3 defaults)"
	@echo "make broker-restart  restart the broker that 'make broker' started (stop_app, start_app)"
	@echo "make broker-stop  stop the broker that 'make broker' started (nothing else)"
	@echo "make queues       the broker's queues with their ready and unacked counts (no UI needed)"
	@echo "make cluster      a 3-node RabbitMQ cluster on this machine (RABBITMQ=4: 4.x); make cluster-stop"
	@echo "make cluster-kill NODE=n / cluster-start NODE=n   crash node n (SIGKILL), start it again"
	@echo "make cluster-ctl NODE=n CMD=\"rabbitmq-queues quorum_status tasks\"   a CLI tool on node n"
	@echo "make lint         ruff"
# >>> author-only
	@echo "make grade SUBMISSION=DIR [RESULTS=results.json]   grade a student's checkout or task folder"
	@echo "make student-edition OUT=DIR                       export what students receive"
	@echo "make bench                                         benchmarks (BENCH_QUICK=1 for a short run)"
# <<< author-only

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[dev]'
	@$(PY) -c 'import aio_pika, pytest, pytest_asyncio, pytest_timeout, testcontainers, pika, connectors, course'
	@$(PY) -m course.broker setup
	@touch $(STAMP)
	@echo "Ready. Activate it with: source $(VENV)/bin/activate"

broker: setup
	@$(PY) -m course.broker up $(if $(RABBITMQ),--rabbitmq $(RABBITMQ))

broker-stop: setup
	@$(PY) -m course.broker down

broker-restart: setup
	@$(PY) -m course.broker restart

queues: setup
	@$(PY) -m course.queues

cluster: setup
	@$(PY) -m course.broker cluster $(if $(RABBITMQ),--rabbitmq $(RABBITMQ))

cluster-stop: setup
	@$(PY) -m course.broker cluster-stop

cluster-kill: setup
	@$(PY) -m course.broker cluster-kill $(NODE)

cluster-start: setup
	@$(PY) -m course.broker cluster-start $(NODE)

cluster-ctl: setup
	@$(PY) -m course.broker cluster-ctl $(NODE) $(or $(CMD),rabbitmqctl cluster_status)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# `make test` runs the graded suites on your code in connectors/rabbit/task.
# >>> author-only
# In the authors' repo it is everything that must be green: lint, the tooling and integrity
# checks, the lesson checks, and the graded suites on the reference with the starred tests,
# first on the broker found first, then again on RabbitMQ 4.x with the 4.3 defaults (started
# for the run when none is around; the run fails if none can be had).
# Three pytest-xdist workers share each run's broker; tests on the lessons' fixed queue names run
# in one of them, in turn. The mistake catalogues run in full once, on RabbitMQ 4.x (the broker
# students meet); the first run checks only that their correct bases get full marks on its
# broker too.
RUN_ARGS  ?= --impl solutions --stretch -n 3 --dist loadgroup
TEST_ARGS ?= $(RUN_ARGS) -k "not test_graded_suite_verdict or base-"
ON_4 ?= tests/lessons tests/connectors tests/reference tests/course/test_integrity.py \
        tests/course/test_mistakes.py tests/course/test_demo.py tests/course/test_queues.py
test: lint
# <<< author-only
test: setup
	$(PY) -m pytest $(TEST_ARGS)
# >>> author-only
	$(PY) -m pytest $(RUN_ARGS) --rabbitmq 4 $(ON_4)
# <<< author-only

demo: setup
	@$(PY) -m course.demo $(if $(IMPL),--impl $(IMPL))

# >>> author-only
grade: setup
	@test -n "$(SUBMISSION)" || { echo "usage: make grade SUBMISSION=DIR [RESULTS=results.json]"; exit 2; }
	$(PY) -m course.grade "$(SUBMISSION)" --results "$(or $(RESULTS),results.json)"

student-edition: setup
	@test -n "$(OUT)" || { echo "usage: make student-edition OUT=DIR"; exit 2; }
	$(PY) -m course.export "$(OUT)"

bench: setup
	$(PY) -m benchmarks
# <<< author-only

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

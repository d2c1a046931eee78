"""Points for graded tests: the score table at the end of a run, and ``--results-json``.

A graded test carries ``@pytest.mark.task(n)`` and ``@pytest.mark.points(n)``; starred ones also
``@pytest.mark.stretch``. The table shows, per task, the points earned out of the points
available, with stretch points apart. The results file follows the shape of Exercism's
test-runner interface, version 3 (https://exercism.org/docs/building/tooling/test-runners/
interface), plus points:

    {"version": 3, "status": "pass" | "fail" | "error", "message": "... (only with error)",
     "score": 12, "max_score": 40,
     "tests": [{"name": ..., "test_code": ..., "status": "pass" | "fail" | "error" | "skip",
                "message": ..., "output": ..., "task_id": 1, "points": 2, "max_points": 2,
                "stretch": false}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from course import refusals

OUTPUT_LIMIT = 500  # characters of captured output kept per test, as Exercism does
TASK_NAMES = {1: "Worker (rmq_worker.py)", 2: "Logger (rmq_logger.py)", 3: "RPC (rmq_rpc.py)"}
REQUIRED_TEST_KEYS = ["name", "status", "message", "output", "task_id", "points", "max_points"]
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "tests", "score", "max_score"],
    "properties": {
        "version": {"const": 3},
        "status": {"enum": ["pass", "fail", "error"]},
        "message": {"type": ["string", "null"]},
        "score": {"type": "number"},
        "max_score": {"type": "number"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": REQUIRED_TEST_KEYS,
                "properties": {
                    "name": {"type": "string"},
                    "test_code": {"type": "string"},
                    "status": {"enum": ["pass", "fail", "error", "skip"]},
                    "message": {"type": ["string", "null"]},
                    "output": {"type": ["string", "null"], "maxLength": OUTPUT_LIMIT + 40},
                    "task_id": {"type": "integer"},
                    "points": {"type": "number"},
                    "max_points": {"type": "number"},
                    "stretch": {"type": "boolean"},
                },
            },
        },
    },
}


@dataclass
class TestResult:
    name: str
    test_code: str
    task_id: int
    max_points: float
    stretch: bool
    status: str = "skip"
    message: str | None = None
    output: str | None = None

    @property
    def points(self) -> float:
        return self.max_points if self.status == "pass" else 0


class Scoreboard:
    """Collects the outcome of every graded test in the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, TestResult] = {}
        self.session_error: str | None = None

    # ------------------------------------------------------------------ pytest hooks

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            task = item.get_closest_marker("task")
            if task is None:
                continue
            points = item.get_closest_marker("points")
            graded = {
                "name": _readable_name(item),
                "task_id": int(task.args[0]),
                "max_points": float(points.args[0]) if points else 1.0,
                "stretch": item.get_closest_marker("stretch") is not None,
            }
            self.results[item.nodeid] = TestResult(test_code=item.nodeid, **graded)
            # Under pytest-xdist the controller collects no items: its reports carry this.
            item.user_properties.append((GRADED, graded))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self.session_error is None:
            self.session_error = (
                f"Could not load {report.nodeid or 'the tests'}:\n{_text(report.longrepr)}"
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:  # a report from an xdist worker
            graded = dict(report.user_properties).get(GRADED)
            if graded is None:
                return
            result = self.results[report.nodeid] = TestResult(test_code=report.nodeid, **graded)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                result.status = "pass"
            elif report.skipped:
                result.status, result.message = "skip", _skip_reason(report)
            else:
                result.status = "fail" if report.when == "call" else "error"
                result.message = _failure_message(report)
            output = (report.capstdout + report.capstderr).strip()
            result.output = _truncate(output) if output else None
        elif report.when == "teardown" and report.failed and result.status == "pass":
            result.status, result.message = "error", _failure_message(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("results_json")
        if path and not hasattr(self.config, "workerinput"):  # the xdist controller writes it
            Path(path).write_text(json.dumps(self.as_results(session), indent=2) + "\n")

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        if not self.results or self.config.option.collectonly:
            return
        write = terminalreporter.write_line
        terminalreporter.section("score")
        for line in self.table():
            write(line)
        path = self.config.getoption("results_json")
        if path:
            write(f"Results written to {path}")

    # ------------------------------------------------------------------ reports

    def tests(self) -> list[dict]:
        tests = [{**asdict(result), "points": result.points} for result in self.results.values()]
        for test in tests:
            if test["status"] == "skip" and test["message"] is None:  # no report at all
                test["message"] = NOT_RUN
        return tests

    def table(self) -> list[str]:
        return table_lines(self.tests())

    def as_results(self, session: pytest.Session) -> dict:
        tests = self.tests()
        failed = any(test["status"] in ("fail", "error") for test in tests)
        error = self.session_error or self.config.stash.get(SESSION_ERROR, None)
        if error is None and not tests:
            error = "No graded tests ran."
        if error is None and session.exitstatus not in (0, 1):
            error = f"The test run ended abnormally (pytest exit status {session.exitstatus})."
        results: dict = {"version": 3, "status": "error" if error else "fail" if failed else "pass"}
        if error:
            results["message"] = error
        results["score"] = sum(test["points"] for test in tests)
        results["max_score"] = sum(test["max_points"] for test in tests)
        results["tests"] = tests
        return results


SESSION_ERROR = pytest.StashKey[str]()
GRADED = "course_graded"  # the user property that carries a graded test's name and points
NOT_RUN = "not run: the run stopped before this test (-x, a crash, or a time limit)"


def table_lines(tests: list[dict]) -> list[str]:
    """Per task: points earned / available, stretch apart; then the total."""
    totals: dict[int, dict[str, float]] = {}
    for test in tests:
        row = totals.setdefault(
            test["task_id"],
            {"got": 0, "max": 0, "s_got": 0, "s_max": 0, "s_skipped": 0, "not_run": 0},
        )
        prefix = "s_" if test.get("stretch") else ""
        row[prefix + "got"] += test["points"]
        row[prefix + "max"] += test["max_points"]
        if test["status"] == "skip" and test.get("message") == NOT_RUN:
            row["not_run"] += 1
        elif test.get("stretch") and test["status"] == "skip":
            row["s_skipped"] += 1
    lines = []
    all_got = all_max = s_got = s_max = 0.0
    for task, row in sorted(totals.items()):
        label = f"Task {task}: {TASK_NAMES.get(task, '')}".ljust(32)
        line = f"{label}{_num(row['got']):>5} / {_num(row['max']):<5} points"
        if row["s_max"]:
            line += f"   stretch {_num(row['s_got'])} / {_num(row['s_max'])}"
            if row["s_skipped"]:
                line += f" ({int(row['s_skipped'])} skipped: remove their skip mark to try)"
        if row["not_run"]:
            line += f"   ({int(row['not_run'])} not run: the run stopped early)"
        lines.append(line)
        all_got, all_max = all_got + row["got"], all_max + row["max"]
        s_got, s_max = s_got + row["s_got"], s_max + row["s_max"]
    total = f"{'Total'.ljust(32)}{_num(all_got):>5} / {_num(all_max):<5} points"
    if s_max:
        total += f"   stretch {_num(s_got)} / {_num(s_max)}"
    return [*lines, total]


def _num(value: float) -> str:
    return f"{value:g}"


def _readable_name(item: pytest.Item) -> str:
    parts = item.nodeid.split("::")[1:]
    return " > ".join(part.replace("_", " ") for part in parts)


def _truncate(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:OUTPUT_LIMIT] + "\n... (output truncated)"


def _text(longrepr: object) -> str:
    return str(longrepr) if longrepr is not None else ""


def _skip_reason(report: pytest.TestReport) -> str | None:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


def _failure_message(report: pytest.TestReport) -> str:
    """The part a student needs: our plain-words message, not the whole traceback."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        message = crash.message
        for prefix in ("Failed: ", "AssertionError: "):
            if message.startswith(prefix):
                return message.removeprefix(prefix)
        # An exception no test turned into words: if the broker refused something, say what.
        explained = refusals.explain(message)
        return f"{explained} ({message.splitlines()[0][:200]})" if explained else message
    return _text(report.longrepr)

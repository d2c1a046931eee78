"""`make grade`: a clean copy, our tests only, hard limits, and errors a student can read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

from course import impl
from course.scoring import RESULTS_SCHEMA

pytestmark = pytest.mark.timeout(300)


def make_checkout(
    root: Path, worker: str | None = None, logger: str | None = None, rpc: str | None = None
) -> Path:
    """A student's checkout: the task folder (reference unless given) plus their own tests."""
    task = root / "connectors" / "rabbit" / "task"
    task.mkdir(parents=True)
    for name, text in (("rmq_worker", worker), ("rmq_logger", logger), ("rmq_rpc", rpc)):
        source = impl.REFERENCE_DIR / f"{name}.py"
        (task / f"{name}.py").write_text(text if text is not None else source.read_text())
    # The student's own (edited) tests must never run during grading.
    tests = root / "tests" / "connectors" / "rabbit"
    tests.mkdir(parents=True)
    canary = root / "own-tests-ran"
    (tests / "test_rmq_worker.py").write_text(
        f"from pathlib import Path\n\ndef test_cheat():\n    Path({str(canary)!r}).touch()\n"
    )
    return root


def grade(submission: Path, tmp_path: Path, url: str) -> tuple[dict, str]:
    results = tmp_path / "results.json"
    done = subprocess.run(
        ["make", "-s", "grade", f"SUBMISSION={submission}", f"RESULTS={results}"],
        cwd=impl.ROOT, env={**os.environ, "RABBITMQ_URL": url}, capture_output=True, text=True,
        timeout=280, check=False,
    )  # fmt: skip
    report = json.loads(results.read_text())
    jsonschema.validate(report, RESULTS_SCHEMA)
    return report, done.stdout + done.stderr


def test_the_reference_gets_full_marks_and_own_tests_never_run(tmp_path, rabbitmq_url) -> None:
    checkout = make_checkout(tmp_path / "student")
    report, output = grade(checkout, tmp_path, rabbitmq_url)
    assert report["status"] == "pass", output
    assert report["score"] == report["max_score"] > 0
    assert not (checkout / "own-tests-ran").exists(), "grading ran the submission's own tests"
    assert "Task 1: Worker" in output and "Task 3: RPC" in output and "Total" in output


def test_syntax_and_import_errors_give_status_error_with_a_readable_message(
    tmp_path, rabbitmq_url
) -> None:
    worker = impl.REFERENCE_DIR.joinpath("rmq_worker.py").read_text()
    broken_worker = worker.replace("class Worker", "class Worker(:", 1)
    submission = make_checkout(
        tmp_path / "student",
        worker=broken_worker,
        logger="import no_such_package\n",
        rpc="import no_such_package\n",
    )
    task = submission / "connectors" / "rabbit" / "task"  # grading just the task folder works too
    report, output = grade(task, tmp_path, rabbitmq_url)
    assert report["status"] == "error" and report["score"] == 0
    assert "rmq_worker.py has a syntax error at line" in report["message"]
    assert "rmq_logger.py could not be imported: ModuleNotFoundError" in report["message"]
    assert "rmq_rpc.py could not be imported: ModuleNotFoundError" in report["message"]
    assert all(test["status"] == "error" for test in report["tests"])
    assert "syntax error" in output


def test_a_crash_is_an_error_not_a_hang(tmp_path, rabbitmq_url) -> None:
    reference = impl.REFERENCE_DIR.joinpath("rmq_logger.py").read_text()
    crashing = reference + "\n\nimport os as _os\n\nLogger.start = lambda self: _os._exit(3)\n"
    submission = make_checkout(tmp_path / "student", logger=crashing)
    report, _output = grade(submission, tmp_path, rabbitmq_url)
    assert report["status"] == "error"
    assert "crashed" in report["message"]


def test_nothing_to_grade_is_an_error_too(tmp_path, rabbitmq_url) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    report, _output = grade(empty, tmp_path, rabbitmq_url)
    assert report["status"] == "error" and "Nothing to grade" in report["message"]

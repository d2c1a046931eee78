"""Grade a student's submission: ``python -m course.grade DIR [--results PATH]``.

``DIR`` is a student's checkout of the course or just their task folder. Only their
``rmq_worker.py``, ``rmq_logger.py`` and ``rmq_rpc.py`` are taken, copied into a clean temp
folder, and run through *our* graded suites (never the tests in the submission), with
``--stretch`` and a hard timeout on every test. The result is the score table on the terminal
and a results file in the shape of Exercism's test-runner interface v3 (see
:mod:`course.scoring`).

A file that does not compile or import, or a run that crashes or overruns, gives the status
``error`` with a message a student can act on; the other tasks are still graded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course import impl
from course.scoring import table_lines

ROOT = impl.ROOT
SUITES = {
    "rmq_worker": ROOT / "tests" / "connectors" / "rabbit" / "test_rmq_worker.py",
    "rmq_logger": ROOT / "tests" / "connectors" / "rabbit" / "test_rmq_logger.py",
    "rmq_rpc": ROOT / "tests" / "connectors" / "rabbit" / "test_rmq_rpc.py",
}
TASK_OF = {"rmq_worker": 1, "rmq_logger": 2, "rmq_rpc": 3}
PER_TEST_TIMEOUT = 30  # seconds; a hung method fails its test, it does not hang the grading
RUN_TIMEOUT = 600  # seconds for a whole suite, whatever happens
IMPORT_TIMEOUT = 20


def precheck(file: Path) -> str | None:
    """Why ``file`` cannot be graded (missing, syntax error, import error), or None."""
    if not file.is_file():
        return f"{file.name} is missing from the submission."
    source = file.read_text(errors="replace")
    try:
        compile(source, file.name, "exec")
    except SyntaxError as error:
        where = f"line {error.lineno}" + (f", column {error.offset}" if error.offset else "")
        code = (error.text or "").rstrip()
        pointer = f"\n    {code}" if code else ""
        return f"{file.name} has a syntax error at {where}: {error.msg}{pointer}"
    loader = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location(sys.argv[2], sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules[sys.argv[2]] = module\n"
        "spec.loader.exec_module(module)\n"
    )
    name = f"connectors.rabbit.task.{file.stem}"
    try:
        result = subprocess.run(
            [sys.executable, "-c", loader, str(file), name],
            capture_output=True, text=True, timeout=IMPORT_TIMEOUT, cwd=file.parent, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"Importing {file.name} did not finish in {IMPORT_TIMEOUT} s (code at module level?)"
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {result.returncode}"
        where = next(
            (line.strip() for line in reversed(lines) if file.name in line and "line" in line), ""
        )
        return f"{file.name} could not be imported: {last}" + (f" ({where})" if where else "")
    return None


def grade(submission: Path, results_path: Path, per_test_timeout: int = PER_TEST_TIMEOUT) -> dict:
    try:
        source_dir = impl.resolve(submission)
    except impl.ImplNotFound as error:
        results = _error_results(f"Nothing to grade: {error}")
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        return results

    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        work = Path(tmp) / "submission"
        work.mkdir()
        problems: dict[str, str] = {}
        for module in SUITES:
            file = source_dir / f"{module}.py"
            problem = precheck(file)
            if problem is None:
                shutil.copy2(file, work / file.name)
            else:
                problems[module] = problem
                # Grade the rest; this task's tests run on the stub and are marked as errors.
                shutil.copy2(impl.STUDENT_DIR / f"{module}.py", work / f"{module}.py")
        # One pytest per suite, side by side: grading takes as long as the slower suite.
        runs = {
            module: _start(module, suite, work, Path(tmp), per_test_timeout)
            for module, suite in SUITES.items()
        }
        results = _merge([_finish(*run) for run in runs.values()])
    for module, problem in problems.items():
        for test in results.get("tests", []):
            if test["task_id"] == TASK_OF[module]:
                test.update(status="error", message=problem, output=None, points=0)
    if problems:
        results["status"] = "error"
        results["message"] = "\n".join(problems.values())
        results["score"] = sum(test["points"] for test in results.get("tests", []))
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _start(
    module: str, suite: Path, work: Path, tmp: Path, per_test_timeout: int
) -> tuple[subprocess.Popen[str], Path, float]:
    raw = tmp / f"{module}.results.json"
    command = [
        sys.executable, "-m", "pytest", str(suite),
        "--impl", str(work), "--stretch", "--results-json", str(raw),
        "--timeout", str(per_test_timeout), "-p", "no:cacheprovider", "-q",
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-o", "addopts=",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    return process, raw, time.monotonic() + RUN_TIMEOUT


def _finish(process: subprocess.Popen[str], raw: Path, deadline: float) -> dict:
    try:
        output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return _error_results(f"Grading stopped after {RUN_TIMEOUT} s: the run hung.")
    if not raw.exists():
        tail = "\n".join(output.strip().splitlines()[-15:])
        return _error_results(f"The test run crashed (exit code {process.returncode}):\n{tail}")
    return json.loads(raw.read_text())


def _merge(parts: list[dict]) -> dict:
    tests = [test for part in parts for test in part.get("tests", [])]
    statuses = {part["status"] for part in parts}
    status = "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"
    merged: dict = {"version": 3, "status": status}
    messages = [part["message"] for part in parts if part.get("message")]
    if messages:
        merged["message"] = "\n".join(messages)
    merged["score"] = sum(test["points"] for test in tests)
    merged["max_score"] = sum(test["max_points"] for test in tests)
    merged["tests"] = tests
    return merged


def _error_results(message: str) -> dict:
    return {"version": 3, "status": "error", "message": message, "score": 0, "max_score": 0,
            "tests": []}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.grade", description=__doc__)
    parser.add_argument("submission", type=Path, help="a student's checkout or task folder")
    parser.add_argument("--results", type=Path, default=Path("results.json"))
    parser.add_argument("--timeout", type=int, default=PER_TEST_TIMEOUT, help="seconds per test")
    args = parser.parse_args(argv)
    began = time.monotonic()
    results = grade(args.submission, args.results.resolve(), args.timeout)
    print(f"Graded {args.submission} in {time.monotonic() - began:.0f} s: {results['status']}")
    if results.get("message"):
        print(results["message"])
    for line in table_lines(results.get("tests", [])):
        print(line)
    failing = [t for t in results.get("tests", []) if t["status"] in ("fail", "error")]
    said = results.get("message") or ""
    for test in failing:
        if test["message"] and test["message"] in said:
            continue  # e.g. a syntax error: said once above, not once per test
        first_line = next(iter((test["message"] or "").splitlines()), "")
        print(f"  - {test['name']}: {first_line[:160]}")
    print(f"Results written to {args.results}")
    return 0 if results["status"] != "error" else 1


if __name__ == "__main__":
    sys.exit(main())

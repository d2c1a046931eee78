"""Figure 5: how long the test suites take, wall time, on the broker the benchmarks use.

* each graded suite on the reference with the starred tests:
  ``python -m pytest tests/connectors/rabbit/test_rmq_worker.py --impl solutions --stretch``
  (and the same for ``test_rmq_logger.py``);
* ``make test`` as a whole (lint, tooling and integrity checks, lesson checks, mistake
  catalogues, graded suites): several minutes, so a quick run (``BENCH_QUICK=1``) skips it.

``RABBITMQ_URL`` is set to the benchmarks' broker, so no suite starts a broker of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks.common import QUICK
from course.impl import ROOT

GRADED = {
    "worker suite": "tests/connectors/rabbit/test_rmq_worker.py",
    "logger suite": "tests/connectors/rabbit/test_rmq_logger.py",
}
TIMEOUT = 1800  # seconds: `make test` runs the mistake catalogues too


def _summary(output: str) -> str:
    """pytest's last line (``16 passed in 10.5s``), or make's last line."""
    lines = [line.strip("= ") for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if " passed" in line or " failed" in line or " error" in line:
            return line
    return lines[-1] if lines else ""


def _timed(command: list[str], url: str) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "RABBITMQ_URL": url},
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, output = None, f"timed out after {TIMEOUT} s"
    # pytest's short summary: "FAILED tests/...::test_x - message" (not "ERROR    logger:...")
    failures = [line for line in output.splitlines() if re.match(r"(FAILED|ERROR) \S+::", line)]
    return {
        "command": " ".join(command),
        "seconds": time.perf_counter() - started,
        "passed": code == 0,
        "summary": _summary(output),
        "failures": failures[:20],
    }


def suite_times(url: str, say: Callable[[str], None] = print, make_test: bool = not QUICK) -> dict:
    """Figure 5: wall seconds of each graded suite, and of `make test` unless quick."""
    rows = {}
    for name, path in GRADED.items():
        command = [sys.executable, "-m", "pytest", path, "--impl", "solutions", "--stretch", "-q"]
        rows[name] = _timed(command, url)
        say(f"  fig 5: {name}: {rows[name]['seconds']:.1f} s ({rows[name]['summary']})")
        for line in rows[name]["failures"]:
            say(f"    {line}")
    if make_test:
        rows["make test"] = _timed(["make", "test"], url)
        say(f"  fig 5: make test: {rows['make test']['seconds']:.1f} s")
        for line in rows["make test"]["failures"]:
            say(f"    {line}")
    else:
        rows["make test"] = {"command": "make test", "skipped": "BENCH_QUICK=1: takes minutes"}
        say("  fig 5: make test: skipped (BENCH_QUICK=1; it takes several minutes)")
    return rows

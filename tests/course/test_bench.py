"""The benchmarks still run: every figure at a tiny size, and the JSON has the issue's keys.

No timing is asserted here: benchmarks are scripts that print figures (see benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import __main__ as bench
from benchmarks import logger, publish, suites, worker
from course.impl import ROOT

KEYS = ("worker_vs_raw", "capacity_efficiency", "put_vs_raw", "logger_p99_ms")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "THROUGHPUT_MESSAGES", {1: 10, 10: 30, 100: 100})
    monkeypatch.setattr(worker, "THROUGHPUT_ROUNDS", 1)
    monkeypatch.setattr(worker, "EFFICIENCY_BATCHES", 2)
    monkeypatch.setattr(worker, "EFFICIENCY_ROUNDS", 1)
    monkeypatch.setattr(publish, "SEQUENTIAL_MESSAGES", 10)
    monkeypatch.setattr(publish, "CONCURRENT_MESSAGES", 40)
    monkeypatch.setattr(publish, "CONCURRENCY", 4)
    monkeypatch.setattr(publish, "ROUNDS", 1)
    monkeypatch.setattr(logger, "EVENTS", 5)
    monkeypatch.setattr(logger, "ROUNDS", 1)


@pytest.mark.timeout(120)
async def test_every_figure_runs_and_the_report_has_the_keys(
    tiny: None, rabbitmq_url: str, tmp_path
) -> None:
    figures = await bench.run_figures(rabbitmq_url, ["worker", "capacity", "publish", "logger"])
    report = bench.build_report(figures, {"machine": bench.machine()})
    for key in KEYS:
        assert isinstance(report[key], float), f"{key} is {report[key]!r}"
    assert set(report["goals"]) == {"worker_vs_raw", "capacity_efficiency", "put_vs_raw"}
    assert {c: r["messages"] for c, r in figures["worker"].items()} == {1: 10, 10: 30, 100: 100}
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(report))  # what main() writes: it must serialise
    assert set(KEYS) <= set(json.loads(path.read_text()))
    bench.print_tables(figures)
    bench.print_headline(report)


def test_an_unknown_figure_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "nonsense"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "choose from" in done.stdout


def test_the_suite_summary_is_pytests_last_line() -> None:
    output = "....\n== 16 passed in 10.55s ==\n"
    assert suites._summary(output) == "16 passed in 10.55s"

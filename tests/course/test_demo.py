"""`make demo`: the tour runs end to end, says what to notice, and leaves nothing running."""

from __future__ import annotations

import os
import subprocess

import pytest

from course import broker as provisioning
from course import impl

pytestmark = pytest.mark.timeout(240)
NOTICES = (
    "arrived once a receiver ran",  # senders before a receiver
    "round robin",
    "marked redelivered",
    "never more than 2 handlers ran at once",  # prefetch
    "fan-out",
    "something nobody",  # routing
    "capacity=2",
    "let the 2 running ones finish",  # graceful stop
    "stayed in the queue",
    "every running logger got every event",
)


def demo_processes() -> list[int]:
    """Lesson or run_*.py scripts still running from this checkout."""
    found = []
    for marker in (str(impl.ROOT / "connectors" / "rabbit"), str(impl.ROOT / "run_")):
        found += provisioning.node_processes(marker)
    return found


def test_the_tour_runs_in_time_and_leaves_nothing_running(rabbitmq_url) -> None:
    before = set(demo_processes())
    result = subprocess.run(
        ["make", "-s", "demo"], cwd=impl.ROOT, env={**os.environ, "RABBITMQ_URL": rabbitmq_url},
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for notice in NOTICES:
        assert notice in result.stdout, f"the tour never says: {notice!r}"
    assert "Step did not go as expected" not in result.stdout
    assert "Management UI" in result.stdout.splitlines()[-2] + result.stdout.splitlines()[-1]
    assert set(demo_processes()) <= before, "the demo left scripts running"
    password = provisioning.URL(rabbitmq_url).password
    assert f":{password}@" not in result.stdout + result.stderr


def test_with_the_untouched_stubs_the_tasks_say_what_to_write(rabbitmq_url) -> None:
    result = subprocess.run(
        ["make", "-s", "demo", "IMPL=task"], cwd=impl.ROOT,
        env={**os.environ, "RABBITMQ_URL": rabbitmq_url},
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "WorkerClient is not written yet" in result.stdout
    assert "Logger is not written yet" in result.stdout
    assert "marked redelivered" in result.stdout, "the lessons still run"

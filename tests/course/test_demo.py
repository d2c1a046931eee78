"""`make demo`: the tour runs end to end, says what to notice, and leaves nothing running. On
the untouched stubs it runs the lessons, then says in one line which task steps are not written
yet, and exits 0: a fresh student's first run is no failure."""

from __future__ import annotations

import asyncio
import os
import subprocess

import aio_pika
import pytest
from yarl import URL

from course import broker as provisioning
from course import impl
from course.demo import tour_names_present

# The tour uses the lessons' fixed queue names (in the default vhost when it has no other).
pytestmark = [pytest.mark.timeout(240), pytest.mark.fixed_names]
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
    "disk.# matched any number",  # topic patterns
    "with mandatory=True the sender hears so",
    "int_sum never ran",  # Task 3: arguments checked before the call
)


def demo_processes() -> list[int]:
    """Scripts the demo started that still run: the demo runs each in its work dir, a temp
    folder named course-demo-... (other tests may run lesson scripts at the same time)."""
    return provisioning.node_processes("course-demo-")


def demo(broker, *args: str) -> subprocess.CompletedProcess[str]:
    """`make -s demo ARGS` on the session's broker, in a private vhost when it has a proven
    management API (a node the course started)."""
    env = {**os.environ, "RABBITMQ_URL": broker.url}
    env.pop("RABBITMQ_MANAGEMENT_URL", None)
    if broker.management_url:
        env["RABBITMQ_MANAGEMENT_URL"] = broker.management_url
    return subprocess.run(
        ["make", "-s", "demo", *args], cwd=impl.ROOT, env=env,
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip


def test_the_tour_runs_in_time_and_leaves_nothing_running(broker) -> None:
    before = set(demo_processes())
    names_before = asyncio.run(tour_names_present(broker.url))
    result = demo(broker)
    problems = [line for line in result.stdout.splitlines() if "did not go as expected" in line]
    assert result.returncode == 0, "\n".join(
        [*problems, result.stdout[-4000:], result.stderr[-2000:]]
    )
    for notice in NOTICES:
        assert notice in result.stdout, f"the tour never says: {notice!r}"
    assert "Step did not go as expected" not in result.stdout
    assert "Management UI" in result.stdout.splitlines()[-2] + result.stdout.splitlines()[-1]
    assert set(demo_processes()) <= before, "the demo left scripts running"
    left = asyncio.run(tour_names_present(broker.url)) - names_before
    assert not left, f"the demo left queues or exchanges in the broker's default vhost: {left}"
    assert "Not written yet" not in result.stdout, "the reference has every step written"
    password = URL(broker.url).password
    assert f":{password}@" not in result.stdout + result.stderr


def test_with_the_untouched_stubs_the_lessons_run_and_one_line_names_the_missing_steps(
    broker,
) -> None:
    result = demo(broker, "IMPL=task")  # in this repo, connectors/rabbit/task holds the stubs
    assert result.returncode == 0, (
        "a fresh student's `make demo` should exit 0: nothing went wrong, the tasks are just "
        "not written yet\n" + result.stdout[-4000:] + result.stderr[-2000:]
    )
    for notice in NOTICES[:6]:  # the lessons' part of the tour
        assert notice in result.stdout, f"the tour never says: {notice!r}"
    assert "Step did not go as expected" not in result.stdout, result.stdout[-4000:]
    assert "Error" not in result.stderr and "Traceback" not in result.stdout + result.stderr, (
        result.stdout[-4000:] + result.stderr[-2000:]
    )
    summary = [line for line in result.stdout.splitlines() if "Not written yet" in line]
    assert len(summary) == 1, result.stdout[-4000:]
    for step in ("Task 1", "WorkerClient.put", "Worker.start (Step 2)", "Task 2", "Logger.start",
                 "Task 3", "RpcServer.start"):  # fmt: skip
        assert step in summary[0], f"the summary line should name {step!r}: {summary[0]}"
    assert "Worker.handler" not in summary[0], "handler is for subclasses to override"


async def test_an_empty_transient_hello_left_by_an_older_version_does_not_stop_the_tour(
    broker,
) -> None:
    if broker.denies_transient or broker.management_url:
        pytest.skip("only where the demo runs in the broker's own vhost and transient queues exist")
    connection = await aio_pika.connect(broker.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete("hello")
        await channel.declare_queue("hello", durable=False)  # what the lessons made before 4.3
    result = await asyncio.to_thread(demo, broker)
    assert "deleted the empty queue 'hello'" in result.stdout, result.stdout[-4000:]
    assert "Step did not go as expected" not in result.stdout, result.stdout[-4000:]

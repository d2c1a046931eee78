"""Lesson checks: run each lesson's scripts as a student would, and watch what they print.

Every script runs as a subprocess (``python connectors/rabbit/<lesson>/<script>.py ...`` from
the repo root) with ``RABBITMQ_URL`` pointing into a vhost of this session's own, where the
broker allows one (see :mod:`course.vhost`), and ``LESSON_WORK_SECONDS`` shortening the
chapter's 5 s of work. Waits poll the scripts' output with a deadline; every script a test
starts is killed when the test ends, pass or fail.

``LESSONS_DIR`` (env) runs the checks on another copy of ``connectors/rabbit``, e.g. one with a
lesson deliberately broken (see ``mutants.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest
import pytest_asyncio
from lesson_scripts import Script

from course import vhost
from course.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
LESSONS = Path(os.environ.get("LESSONS_DIR") or ROOT / "connectors" / "rabbit").resolve()
FIXED_QUEUES = ("hello", "ack", "logger", "durable", "transient", "rpc_queue", "confirms",
                "confirms_full")  # fmt: skip
FIXED_EXCHANGES = ("logs", "logs_level", "topic_logs")


@pytest.fixture(scope="session")
def lessons_dir() -> Path:
    """The lesson folders under test (connectors/rabbit, or $LESSONS_DIR)."""
    return LESSONS


@pytest.fixture(scope="session")
def lesson_url(broker: Broker, request: pytest.FixtureRequest) -> Iterator[str]:
    """The AMQP URL the lesson scripts get: a private vhost when the broker allows one."""
    vhost.remove_stale(broker.url, broker.management_url)
    private = vhost.create(broker.url, broker.management_url)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"lesson checks: {private.describe()}")
    yield private.url
    private.delete()


@pytest_asyncio.fixture
async def amqp_admin(lesson_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """The test's own connection into the lessons' vhost. The fixed names the lessons use are
    deleted before the test (leftovers of an aborted run) and after it (nothing left behind)."""
    connection = await aio_pika.connect(lesson_url, timeout=10)
    async with connection:
        await _delete_fixed_names(connection)
        yield connection
        await _delete_fixed_names(connection)


async def _delete_fixed_names(connection: aio_pika.abc.AbstractConnection) -> None:
    channel = await connection.channel()
    async with channel:
        for queue in FIXED_QUEUES:
            await channel.queue_delete(queue)  # no error when it does not exist
        for exchange in FIXED_EXCHANGES:
            await channel.exchange_delete(exchange)


@pytest.fixture
def queue_state(
    amqp_admin: aio_pika.abc.AbstractConnection,
) -> Callable[[str], Awaitable[tuple[int, int] | None]]:
    """``await queue_state("ack")`` -> (ready messages, consumers), or None if there is no queue."""

    async def state(name: str) -> tuple[int, int] | None:
        return await passive_state(amqp_admin, name)

    return state


async def passive_state(
    connection: aio_pika.abc.AbstractConnection, name: str
) -> tuple[int, int] | None:
    """(ready messages, consumers) of the queue ``name``, or None if there is no such queue."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:  # 404: no such queue
        return None
    result = queue.declaration_result
    with contextlib.suppress(Exception):
        await channel.close()
    return result.message_count, result.consumer_count


@pytest.fixture
def shape_differs(
    amqp_admin: aio_pika.abc.AbstractConnection,
) -> Callable[..., Awaitable[str | None]]:
    """``await shape_differs("logger", durable=True, auto_delete=True)``: None when the queue
    exists with exactly these arguments, else what differs (the broker's words)."""

    async def differs(name: str, **shape: object) -> str | None:
        if await passive_state(amqp_admin, name) is None:
            return f"there is no queue {name!r}"
        channel = await amqp_admin.channel()
        try:  # the same declaration again changes nothing; another shape is refused (406)
            await channel.declare_queue(name, **shape)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:
            return str(error).split(" - ", 1)[-1]
        with contextlib.suppress(Exception):
            await channel.close()
        return None

    return differs


@pytest.fixture
def take(amqp_admin: aio_pika.abc.AbstractConnection) -> Callable[[str], Awaitable[list]]:
    """``await take("ack")``: every message waiting in the queue, taken out of it (acked)."""

    async def take_all(name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        channel = await amqp_admin.channel()
        queue = await channel.declare_queue(name, passive=True)
        taken = []
        while message := await queue.get(fail=False):
            await message.ack()
            taken.append(message)
        with contextlib.suppress(Exception):
            await channel.close()
        return taken

    return take_all


@pytest.fixture
def run(
    lesson_url: str, amqp_admin: aio_pika.abc.AbstractConnection, tmp_path: Path
) -> Iterator[Callable[..., Script]]:
    """``run("ack", "receiver", "--no-ack", work=30, cwd=tmp_path)`` starts a lesson script;
    ``url=`` points it at another broker than the session's. ``run(path, "", ...)`` starts the
    script at ``path`` instead (a check's own script that uses lesson.py)."""
    started: list[Script] = []

    def start(
        lesson: str | Path,
        script: str,
        *args: str,
        work: float = 0.2,
        cwd: Path | None = None,
        url: str | None = None,
    ) -> Script:
        path = lesson if isinstance(lesson, Path) else LESSONS / lesson / f"{script}.py"
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) and cwd is None else path
        env = {
            **os.environ,
            "RABBITMQ_URL": url or lesson_url,
            "LESSON_WORK_SECONDS": str(work),
        }
        env.pop("PYTHONUNBUFFERED", None)  # the scripts must flush their prints themselves
        if "LESSONS_DIR" in os.environ:  # a copy of the tree: import its lesson.py, not ours
            env["PYTHONPATH"] = str(LESSONS.parents[1])
        started.append(Script([sys.executable, str(shown), *args], cwd or ROOT, env))
        return started[-1]

    yield start
    for script in started:
        script.stop()


@pytest.fixture
def send(run: Callable[..., Script]) -> Callable[..., Awaitable[Script]]:
    """``await send("ack", "job-1")`` runs a lesson's sender to the end; it must exit 0."""

    async def run_sender(lesson: str, *args: str) -> Script:
        sender = run(lesson, "sender", *args)
        code = await sender.finished()
        assert code == 0, f"{sender.name} exited with {code}" + sender.report()
        return sender

    return run_sender

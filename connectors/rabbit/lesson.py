"""What every lesson script needs besides its lesson, kept here so each script stays short.
A script uses it like this:

    connection = await lesson.connect()  # RABBITMQ_URL or the local broker; says what to do if none
    options = lesson.parser(__doc__)     # command-line options, with --work SECONDS already in
    lesson.run(main())                   # asyncio.run; Ctrl+C or SIGTERM stop it cleanly (exit 0)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from yarl import URL

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
WORK_SECONDS = 5.0  # the chapter's "work": long enough to kill a receiver in the middle of it

NO_BROKER = """\
Could not connect to RabbitMQ at {url}: {reason}
If no broker is running yet, start one and run this again. Any one of these will do:
  make broker                      (finds or starts one; prints the export line to use)
  docker compose up -d --wait      (from the repo root)
If your broker is elsewhere, point the lessons at it:
  export RABBITMQ_URL=amqp://user:password@host:5672/vhost"""


def rabbitmq_url() -> str:
    return os.environ.get("RABBITMQ_URL") or DEFAULT_URL


def masked(url: str) -> str:
    """The URL with its password hidden, so it is safe to print."""
    parsed = URL(url)
    return str(parsed.with_password("****")) if parsed.password else url


async def connect() -> AbstractConnection:
    """Open a connection to RABBITMQ_URL, or exit with a message that says what to do."""
    url = rabbitmq_url()
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # we explain failures below
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except aio_pika.exceptions.ProbableAuthenticationError:
        reason = "the broker refused the login (check the user and password in RABBITMQ_URL)"
        raise SystemExit(NO_BROKER.format(url=masked(url), reason=reason)) from None
    except OSError as error:  # refused, unknown host, timeout: no broker answers there
        reason = str(error) or type(error).__name__
        raise SystemExit(NO_BROKER.format(url=masked(url), reason=reason)) from None
    except aio_pika.exceptions.AMQPError:
        reason = "the broker would not open the connection (does the vhost in the URL exist?)"
        raise SystemExit(NO_BROKER.format(url=masked(url), reason=reason)) from None
    connection.close_callbacks.add(_on_close)
    return connection


def no_broker(error: BaseException) -> SystemExit:
    """The exit for "no broker answers at RABBITMQ_URL": what went wrong, and what to do."""
    url = rabbitmq_url()
    reason = (str(error) or type(error).__name__).replace(url, masked(url))
    return SystemExit(NO_BROKER.format(url=masked(url), reason=reason))


async def stop_requested() -> None:
    """Wait for Ctrl+C or SIGTERM, for a script that has cleaning up to do before it exits."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C stays an exception
            loop.add_signal_handler(stop_signal, stopping.set)
    await stopping.wait()


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--work SECONDS`` (default 5, or $LESSON_WORK_SECONDS)."""
    default = float(os.environ.get("LESSON_WORK_SECONDS") or WORK_SECONDS)
    options = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument(
        "--work",
        type=float,
        default=default,
        metavar="SECONDS",
        help="how long the pretend work on each message takes "
        "(default: %(default)g; or set LESSON_WORK_SECONDS)",
    )
    return options


def run(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run(main), where Ctrl+C and SIGTERM cancel main: its `async with connection`
    block closes the connection, and the script exits with code 0 and no traceback."""
    sys.stdout.reconfigure(line_buffering=True)  # each print shows at once, even through a pipe
    # On Ctrl+C the connection closes first, then unfinished handlers are cancelled. A
    # message.process() block then cannot reject its message, and would log that. No harm is
    # done: the broker puts every unacknowledged message back in its queue anyway.
    logging.getLogger("aio_pika.message").setLevel(logging.ERROR)
    try:
        asyncio.run(_until_stopped(main))
    except KeyboardInterrupt:  # Ctrl+C before the loop was listening (or on Windows)
        print(" [*] Stopped.")


_main_task: asyncio.Future[None] | None = None
_lost: list[str] = []  # why the broker closed our connection, if it did


async def _until_stopped(main: Coroutine[Any, Any, None]) -> None:
    global _main_task
    task = _main_task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        # (Windows has no signal handlers in asyncio; there Ctrl+C is a KeyboardInterrupt.)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(stop_signal, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():  # main exited the program (SystemExit); let it go
            raise
        if _lost:
            raise SystemExit(f"Lost the connection to RabbitMQ: {_lost[0]}") from None
        print(" [*] Stopped.")


def _on_close(connection: AbstractConnection, error: BaseException | None) -> None:
    if not connection.close_called and _main_task is not None:  # the broker closed it, not us
        _lost.append(str(error) or type(error).__name__)
        _main_task.cancel()

"""What every lesson script needs besides its lesson, kept here so each script stays short.
A script uses it like this:

    connection = await lesson.connect()  # RABBITMQ_URL or the local broker; says what to do if none
    options = lesson.parser(__doc__)     # command-line options, with --work SECONDS already in
    lesson.run(main())                   # asyncio.run; Ctrl+C or SIGTERM stop it cleanly (exit 0)

When RabbitMQ refuses something (a queue declared with another shape than the one it has, a
transient queue on RabbitMQ 4.3, a missing exchange, a wrong password ...), it closes the
channel or the whole connection. The script then ends with one sentence saying what was
refused and what to change (exit code 1), wherever that happened: at an `await` in main(),
inside a consumer callback, or while it was waiting for messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from yarl import URL

from course.refusals import explain

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
        connection = await aio_pika.connect(url, timeout=10, connection_class=_Connection)
    except aio_pika.exceptions.ProbableAuthenticationError as error:  # it answers: wrong login
        raise SystemExit(f"{refusal(error)} (RABBITMQ_URL is {masked(url)})") from None
    except OSError as error:  # refused, unknown host, timeout: no broker answers there
        reason = str(error) or type(error).__name__
        raise SystemExit(NO_BROKER.format(url=masked(url), reason=reason)) from None
    except aio_pika.exceptions.AMQPError as error:  # it answers, but will not let us in the vhost
        raise SystemExit(f"{refusal(error)} (RABBITMQ_URL is {masked(url)})") from None
    connection.close_callbacks.add(_on_close)
    return connection


def refusal(error: BaseException) -> str:
    """What RabbitMQ refused and what to change, in one line (``course.refusals`` has the words)."""
    text = " ".join(str(error).split())
    leftover = re.search(
        r"inequivalent arg 'durable' for queue '([^']*)' in vhost '([^']*)': "
        r"received 'true' but current is 'false'",
        text,
    )
    if leftover:  # a queue an older version of the lessons made transient (before RabbitMQ 4.3)
        name, vhost = leftover.groups()
        ctl = "rabbitmqctl" + ("" if vhost == "/" else f" -p {vhost}") + f" delete_queue {name}"
        return (
            f"The queue '{name}' exists already and is not durable (an older version of the "
            f"lessons made it so), and RabbitMQ never changes an existing queue: delete it (in "
            f"the management UI: Queues, {name}, Delete; or on the broker's machine: {ctl}) "
            f"and run this again."
        )
    return explain(error) or f"RabbitMQ refused: {text or type(error).__name__}"


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
    block closes the connection, and the script exits with code 0 and no traceback. A broker
    refusal ends it with one sentence saying why, and exit code 1."""
    sys.stdout.reconfigure(line_buffering=True)  # each print shows at once, even through a pipe
    # On Ctrl+C the connection closes first, then unfinished handlers are cancelled. A
    # message.process() block then cannot reject its message, and would log that. No harm is
    # done: the broker puts every unacknowledged message back in its queue anyway.
    logging.getLogger("aio_pika.message").setLevel(logging.ERROR)
    # A refusal inside a consumer callback would be logged with a traceback; we explain it.
    logging.getLogger("aiormq.channel").addFilter(
        lambda record: not (record.exc_info and _refused(record.exc_info[1]))
    )
    try:
        asyncio.run(_until_stopped(main))
    except KeyboardInterrupt:  # Ctrl+C before the loop was listening (or on Windows)
        print(" [*] Stopped.")


_main_task: asyncio.Future[None] | None = None
_lost: list[str] = []  # why the broker closed our connection or a consuming channel, if it did


async def _until_stopped(main: Coroutine[Any, Any, None]) -> None:
    global _main_task
    task = _main_task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_unless_refused)
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
            raise SystemExit(_lost[0]) from None
        print(" [*] Stopped.")
    except aio_pika.exceptions.AMQPError as error:  # refused where main() awaited it
        raise SystemExit(_lost[0] if _lost else refusal(error)) from None


# lesson.connect() makes its connections of these classes (aio-pika's own, plus one hook): once
# a queue has a consumer, its channel being closed by the broker (for example after an ack that
# the broker refused) ends the script. Otherwise the script would wait for messages forever.
class _Queue(aio_pika.Queue):
    async def consume(self, *args: Any, **kwargs: Any) -> Any:
        self.channel.close_callbacks.add(_on_channel_close)
        return await super().consume(*args, **kwargs)


class _Channel(aio_pika.Channel):
    QUEUE_CLASS = _Queue


class _Connection(aio_pika.Connection):
    CHANNEL_CLASS = _Channel


def _on_close(connection: AbstractConnection, error: BaseException | None) -> None:
    if connection.close_called:  # we closed it ourselves
        return
    if error is not None and _refused(error):
        _lost.append(refusal(error))
    else:  # the network broke, or the broker went away without a word
        reason = (str(error) or type(error).__name__) if error else "closed without a reason"
        _lost.append(f"Lost the connection to RabbitMQ: {reason}")
    if _main_task is not None:
        _main_task.cancel()


def _on_channel_close(channel: object, error: BaseException | None) -> None:
    if error is not None and _refused(error) and _main_task is not None:
        _lost.append(refusal(error))
        _main_task.cancel()


def _refused(error: BaseException | None) -> bool:
    """True for the exception of a channel or connection that the broker closed, saying why.
    When we close one ourselves, there is no exception, or one without the broker's reply."""
    closed = aio_pika.exceptions.ChannelClosed | aio_pika.exceptions.ConnectionClosed
    return isinstance(error, closed) and bool(error.args) and error.args[0] not in (None, 0)


def _unless_refused(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's error report, except for broker refusals: the script explains those."""
    if not _refused(context.get("exception")):
        loop.default_exception_handler(context)

"""Task 1, reference solution: a job worker on RabbitMQ and the client that gives it work.

The task text is connectors/rabbit/task/README.md. What this version adds to the task:

* The work queue is durable (``durable=True``, no other arguments unless ``queue_type`` says
  quorum) and every task persistent, so both survive a broker restart; RabbitMQ 4.3 refuses
  transient shared queues anyway. Tasks are JSON (``content_type="application/json"``) with a
  ``message_id``, published with publisher confirms: ``put()`` returns once the broker has the
  task, and raises when the broker refuses it.
* Capacity is the channel's prefetch: the broker hands a worker at most ``capacity`` unacked
  messages, so a busy worker leaves the rest in the queue for others. A semaphore guards the
  same bound inside the process (for example while a reconnect overlaps old handlers).
* A message is acked only after its handler succeeded. A handler that raises gets its message
  tried again, at most ``max_retries`` more times (so at most 3 tries in all by default), then
  parked in ``<queue>.dead`` with the error in its headers: never an endless loop. Retry number
  ``k`` waits ``retry_delay * retry_backoff ** (k - 1)`` seconds in a queue of its own,
  ``<queue>.retry.<ms>ms``, whose queue-level TTL dead-letters it back to the work queue.
  RabbitMQ expires messages only at the head of a queue, so one shared retry queue with a TTL
  per message would make a short retry wait behind a long one; a queue per delay cannot.
* A handler may settle its own message (``async with msg.process():``); the worker then leaves
  it alone.
* ``stop()`` cancels the consumer, lets running handlers finish within ``grace_period`` seconds,
  cancels the rest (their messages go back to the queue, as do messages that were delivered but
  not started) and closes the connection.
* Connections are robust: after a network failure the consumer comes back on its own.
* ``queue_type="quorum"`` makes the work queue (and its retry and dead queues) quorum queues,
  replicated across a cluster's nodes; the default is a classic queue.
* Bad settings fail at construction with ``ValueError``; an unreachable broker fails within
  ``connect_timeout`` seconds with ``ConnectionError``. Passwords never appear in reprs,
  errors or log lines.

Only aio-pika and the standard library: this file can be copied over the student's stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ConsumerTag,
    DeliveryMode,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
RETRY_COUNT_HEADER = "x-retry-count"
MAX_HEADER_TEXT = 1000  # characters of an error message kept in a header
QUEUE_TYPES = ("classic", "quorum")


# --------------------------------------------------------------------------- configuration


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``****``: safe to print or log."""
    scheme, separator, rest = str(url).partition("://")
    if not separator or "@" not in rest:
        return str(url)
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':****' if colon else ''}@{host}"


def _check_url(url: object) -> None:
    example = "expected amqp://user:password@host:5672/vhost"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"rabbit_url is empty; {example}")
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"rabbit_url {shown!r} is not a valid URL; {example}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"rabbit_url {shown!r} must start with amqp:// or amqps://; {example}")
    if not parts.hostname:
        raise ValueError(f"rabbit_url {shown!r} names no host; {example}")


def _check_queue_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError("queue_name must be a non-empty string")
    if len(name.encode()) > 255:
        raise ValueError(f"queue_name {name[:40]!r}... is longer than AMQP allows (255 bytes)")
    if name.startswith("amq."):
        raise ValueError(f"queue_name {name!r}: names starting with 'amq.' belong to the broker")


def _check_number(name: str, value: object, minimum: float, whole: bool = False) -> None:
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {what} >= {minimum:g}, got {value!r}")


def _check_queue_type(value: object) -> None:
    if value not in QUEUE_TYPES:
        raise ValueError(f"queue_type must be one of {', '.join(QUEUE_TYPES)}, got {value!r}")


def _queue_arguments(queue_type: str, **more: Any) -> dict[str, Any] | None:
    """Declaration arguments: none for a classic queue, so that a plain
    ``declare_queue(name, durable=True)`` elsewhere is equivalent to ours."""
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    arguments.update(more)
    return arguments or None


@dataclass
class WorkerClientConfig:
    rabbit_url: str  # amqp://user:password@host:5672/vhost
    queue_name: str  # the queue the tasks go to
    connect_timeout: float = 10.0  # seconds to reach the broker before put() gives up
    queue_type: str = "classic"  # "quorum": declare the work queue as a quorum queue

    def __post_init__(self) -> None:
        _check_url(self.rabbit_url)
        _check_queue_name(self.queue_name)
        _check_number("connect_timeout", self.connect_timeout, 0.001)
        _check_queue_type(self.queue_type)

    def __repr__(self) -> str:
        return (
            f"WorkerClientConfig(rabbit_url={mask_url(self.rabbit_url)!r}, "
            f"queue_name={self.queue_name!r})"
        )


@dataclass
class WorkerConfig:
    rabbit_url: str  # amqp://user:password@host:5672/vhost
    queue_name: str  # the queue the tasks come from
    capacity: int = 1  # at most this many handlers run at once
    grace_period: float = 10.0  # stop(): seconds running handlers get to finish
    max_retries: int = 2  # a failing message is tried 1 + max_retries times, then parked
    retry_delay: float = 1.0  # seconds before the first retry of a failing message
    retry_backoff: float = 2.0  # each further retry waits this many times longer
    prefetch_count: int | None = None  # messages the broker may hand over at once (>= capacity)
    reconnect_interval: float = 1.0  # seconds between reconnection attempts
    connect_timeout: float = 10.0  # seconds to reach the broker before start() gives up
    queue_type: str = "classic"  # "quorum": a quorum work queue (and retry and dead queues)

    def __post_init__(self) -> None:
        _check_url(self.rabbit_url)
        _check_queue_name(self.queue_name)
        _check_number("capacity", self.capacity, 1, whole=True)
        if self.capacity > 65535:
            raise ValueError(f"capacity must be at most 65535 (AMQP prefetch), got {self.capacity}")
        _check_number("grace_period", self.grace_period, 0)
        _check_number("max_retries", self.max_retries, 0, whole=True)
        _check_number("retry_delay", self.retry_delay, 0)
        _check_number("retry_backoff", self.retry_backoff, 1)
        _check_number("reconnect_interval", self.reconnect_interval, 0.01)
        _check_number("connect_timeout", self.connect_timeout, 0.001)
        _check_queue_type(self.queue_type)
        if self.prefetch_count is not None:
            _check_number("prefetch_count", self.prefetch_count, self.capacity, whole=True)
            if self.prefetch_count > 65535:
                raise ValueError("prefetch_count must be at most 65535")

    def retry_delay_of(self, retry: int) -> float:
        """Seconds that retry number ``retry`` (1, 2, ...) of a failing message waits."""
        return self.retry_delay * self.retry_backoff ** (retry - 1)

    def __repr__(self) -> str:
        return (
            f"WorkerConfig(rabbit_url={mask_url(self.rabbit_url)!r}, "
            f"queue_name={self.queue_name!r}, capacity={self.capacity!r})"
        )


async def _connect(
    url: str, timeout: float, reconnect_interval: float = 1.0
) -> AbstractRobustConnection:
    """A robust connection, or ConnectionError (password masked) within ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(
            aio_pika.connect_robust(url, timeout=timeout, reconnect_interval=reconnect_interval),
            timeout + 1,  # a last resort: connect_robust already honours `timeout`
        )
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
        reason = str(error) or type(error).__name__
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, "****")
        if isinstance(error, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise ConnectionError(f"cannot connect to RabbitMQ at {mask_url(url)}: {reason}") from None


async def _declare_work_queue(
    channel: aio_pika.abc.AbstractChannel, name: str, queue_type: str
) -> AbstractQueue:
    """The work queue: durable (it and its persistent tasks outlive a broker restart)."""
    return await channel.declare_queue(name, durable=True, arguments=_queue_arguments(queue_type))


def _task_message(body: bytes, **properties: Any) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        **properties,
    )


# --------------------------------------------------------------------------- the client


class WorkerClient:
    """Puts tasks (JSON-serialisable dicts) into the worker's queue."""

    def __init__(self, config: WorkerClientConfig) -> None:
        """Keep the config; the first put() connects."""
        self.config = config
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._connecting = asyncio.Lock()

    def __repr__(self) -> str:
        state = "connected" if self._connection is not None else "not connected"
        return f"<WorkerClient {self.config!r} {state}>"

    async def __aenter__(self) -> WorkerClient:
        """The client itself; it connects lazily, on the first put()."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the client."""
        await self.stop()

    async def put(self, data: dict) -> None:
        """Send ``data`` as a JSON task to ``config.queue_name``; return once the broker has it.

        Connects on the first call. Raises TypeError for what is not a JSON-serialisable dict,
        and aio_pika.exceptions.DeliveryError when the broker refuses the task.
        """
        if not isinstance(data, dict):
            raise TypeError(f"put() takes a dict, got {type(data).__name__}")
        body = json.dumps(data, ensure_ascii=False).encode()
        message = _task_message(body, message_id=uuid.uuid4().hex, timestamp=datetime.now(UTC))
        channel = await self._ready_channel()
        try:
            await channel.default_exchange.publish(
                message, routing_key=self.config.queue_name, mandatory=True
            )
        except aio_pika.exceptions.PublishError:
            # Returned as unroutable: someone deleted the queue since we declared it. Declare it
            # again and publish once more. A refusal (Basic.Nack: DeliveryError) is the caller's
            # to see, as is a second failure.
            await _declare_work_queue(channel, self.config.queue_name, self.config.queue_type)
            await channel.default_exchange.publish(
                message, routing_key=self.config.queue_name, mandatory=True
            )

    async def _ready_channel(self) -> AbstractRobustChannel:
        async with self._connecting:
            if self._channel is None:
                config = self.config
                connection = await _connect(config.rabbit_url, config.connect_timeout)
                try:
                    channel = await connection.channel(on_return_raises=True)
                    await _declare_work_queue(channel, config.queue_name, config.queue_type)
                except BaseException:
                    await connection.close()
                    raise
                self._connection, self._channel = connection, channel
            return self._channel

    async def stop(self) -> None:
        """Close the connection. Safe to call twice, or before any put()."""
        async with self._connecting:
            connection, self._connection, self._channel = self._connection, None, None
            if connection is not None:
                await connection.close()


# --------------------------------------------------------------------------- the worker


class Worker:
    """Takes tasks from ``config.queue_name`` and runs ``handler`` on each, ``capacity`` at a time.

    Subclass it and override ``handler``. ``start()`` returns at once; ``stop()`` shuts down
    gracefully (see the module docstring).
    """

    def __init__(self, config: WorkerConfig) -> None:
        """Keep the config; start() connects."""
        self.config = config
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._slots = asyncio.Semaphore(config.capacity)
        self._tasks: set[asyncio.Task[Any]] = set()  # one per delivered, unsettled message
        self._side_queues: set[str] = set()  # retry / dead queues declared on this channel
        self._stopping = False
        self._lifecycle = asyncio.Lock()

    def __repr__(self) -> str:
        state = "running" if self._connection is not None else "stopped"
        return f"<{type(self).__name__} {self.config!r} {state}>"

    async def __aenter__(self) -> Worker:
        """Start the worker."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the worker gracefully."""
        await self.stop()

    async def handler(self, msg: AbstractIncomingMessage) -> None:
        """Process one task. Override this in a subclass; raising means "this task failed"."""
        raise NotImplementedError("subclass Worker and override handler()")

    # ------------------------------------------------------------------ consuming

    async def _worker(self, msg: AbstractIncomingMessage) -> None:
        """Run ``handler`` on one delivered message and settle it: ack on success.

        A failure is retried later (bounded), then parked; a message the handler settled itself
        (``msg.process()``, ``msg.ack()``) is left as it is.
        """
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with self._slots:
                if self._stopping:
                    # Delivered (prefetched) but not started: it goes back for someone else.
                    await self._settle(msg, "nack", requeue=True)
                    return
                try:
                    await self.handler(msg)
                except Exception as error:
                    if msg.processed:
                        log.warning(
                            "Handler failed on message %s from queue %r after settling it "
                            "itself; leaving it as the handler did: %s",
                            _message_id(msg), self.config.queue_name, _described(error),
                        )  # fmt: skip
                    else:
                        await self._retry_or_park(msg, error)
                else:
                    await self._settle(msg, "ack")
        except asyncio.CancelledError:
            # stop() ran out of grace, or the channel went away: let the broker have it back.
            await self._settle(msg, "nack", requeue=True)
            raise
        finally:
            self._tasks.discard(task)

    async def _settle(self, msg: AbstractIncomingMessage, action: str, **kwargs: Any) -> bool:
        """Ack / nack once, tolerating a channel that has gone: the broker then requeues."""
        if msg.processed:
            return True  # the handler settled it (msg.process()), or we already did
        try:
            await getattr(msg, action)(**kwargs)
            return True
        except Exception as error:
            log.warning(
                "Could not %s message %s on queue %r (%s); the broker will deliver it again",
                action, _message_id(msg), self.config.queue_name, error,
            )  # fmt: skip
            return False

    async def _retry_or_park(self, msg: AbstractIncomingMessage, error: Exception) -> None:
        """A handler failed: republish for a later try, or park in ``<queue>.dead``; then ack."""
        config = self.config
        retries = _retry_count(msg)
        queue = config.queue_name
        tries = config.max_retries + 1
        described = _described(error)
        headers = {**_own_headers(msg), "x-last-error": described}
        try:
            if retries < config.max_retries:
                delay = config.retry_delay_of(retries + 1)
                log.warning(
                    "Handler failed on message %s from queue %r (try %d of %d), "
                    "trying again in %g s: %s",
                    _message_id(msg), queue, retries + 1, tries, delay, described,
                )  # fmt: skip
                headers[RETRY_COUNT_HEADER] = retries + 1
                await self._publish_copy(msg, await self._retry_queue(delay), headers)
            else:
                dead = await self._dead_queue()
                log.error(
                    "Handler failed on message %s from queue %r (try %d of %d); parked in %r",
                    _message_id(msg), queue, retries + 1, tries, dead, exc_info=error,
                )  # fmt: skip
                headers.update({
                    "x-error": described,
                    "x-error-type": type(error).__name__,
                    RETRY_COUNT_HEADER: retries,
                    "x-original-queue": queue,
                    "x-failed-at": datetime.now(UTC).isoformat(),
                })  # fmt: skip
                await self._publish_copy(msg, dead, headers)
        except Exception as publish_error:
            # Keep the message rather than lose it; slow down so that this is no hot loop.
            log.error(
                "Could not republish failed message %s from queue %r (%s); requeueing it",
                _message_id(msg), queue, publish_error,
            )  # fmt: skip
            self._side_queues.clear()
            await asyncio.sleep(max(config.retry_delay, 0.1))
            await self._settle(msg, "nack", requeue=True)
            return
        await self._settle(msg, "ack")

    async def _publish_copy(
        self, msg: AbstractIncomingMessage, routing_key: str, headers: dict[str, Any]
    ) -> None:
        """Publish a persistent copy of ``msg`` and wait for the broker's confirm."""
        if self._channel is None:
            raise RuntimeError("the worker is not started")
        copy = aio_pika.Message(
            msg.body,
            headers=headers,
            content_type=msg.content_type,
            content_encoding=msg.content_encoding,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=msg.message_id,
            correlation_id=msg.correlation_id,
            timestamp=msg.timestamp,
            type=msg.type,
            app_id=msg.app_id,
        )
        await self._channel.default_exchange.publish(copy, routing_key=routing_key, mandatory=True)

    async def _retry_queue(self, delay: float) -> str:
        """``<queue>.retry.<ms>ms``: a message waits ``delay`` there, then returns to the queue.

        One queue per delay, with the TTL on the queue: all its messages wait equally long, so
        the one at the head always expires first, and no retry waits behind a longer one.
        """
        milliseconds = round(delay * 1000)
        name = f"{self.config.queue_name}.retry.{milliseconds}ms"
        await self._side_queue(
            name,
            **{
                "x-message-ttl": milliseconds,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.config.queue_name,
            },
        )
        return name

    async def _dead_queue(self) -> str:
        """``<queue>.dead``: tasks that failed every try wait there for a human."""
        name = f"{self.config.queue_name}.dead"
        await self._side_queue(name)
        return name

    async def _side_queue(self, name: str, **arguments: Any) -> None:
        if name in self._side_queues or self._channel is None:
            return
        await self._channel.declare_queue(
            name, durable=True, arguments=_queue_arguments(self.config.queue_type, **arguments)
        )
        self._side_queues.add(name)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect, declare the queue, set the prefetch to ``capacity`` and start consuming.

        Returns as soon as the consumer is registered: messages are handled in the background.
        """
        async with self._lifecycle:
            if self._connection is not None:
                raise RuntimeError(f"{self!r} is already started")
            config = self.config
            connection = await _connect(
                config.rabbit_url, config.connect_timeout, config.reconnect_interval
            )
            try:
                self._stopping = False
                self._side_queues.clear()
                self._connection = connection
                self._channel = await connection.channel(on_return_raises=True)
                await self._channel.set_qos(prefetch_count=config.prefetch_count or config.capacity)
                self._queue = await _declare_work_queue(
                    self._channel, config.queue_name, config.queue_type
                )
                self._consumer_tag = await self._queue.consume(self._worker)
            except BaseException:
                self._connection = self._channel = self._queue = None
                await connection.close()
                raise
            log.info("Worker on queue %r started (capacity %d)", config.queue_name, config.capacity)

    async def stop(self) -> None:
        """Stop gracefully, then close the connection. Safe to call twice, or before start().

        1. cancel the consumer: the broker sends nothing more;
        2. let running handlers finish, for at most ``grace_period`` seconds; then cancel them,
           and their messages go back to the queue (as do messages delivered but not started);
        3. close the connection.
        """
        async with self._lifecycle:
            connection = self._connection
            if connection is None:
                return
            self._stopping = True
            try:
                await self._cancel_consumer()
                await self._drain()
            finally:
                self._connection = self._channel = self._queue = None
                self._consumer_tag = None
                await connection.close()
                log.info("Worker on queue %r stopped", self.config.queue_name)

    async def _cancel_consumer(self) -> None:
        if self._queue is None or self._consumer_tag is None:
            return
        try:
            await asyncio.wait_for(self._queue.cancel(self._consumer_tag), timeout=5)
        except Exception as error:  # a broken link: closing the connection ends it anyway
            log.warning("Could not cancel the consumer on %r: %s", self.config.queue_name, error)

    async def _drain(self) -> None:
        tasks = {task for task in self._tasks if task is not asyncio.current_task()}
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.config.grace_period)
        if not pending:
            return
        log.warning(
            "%d handler(s) on queue %r still running after the %g s grace period; cancelling "
            "them, their messages go back to the queue",
            len(pending), self.config.queue_name, self.config.grace_period,
        )  # fmt: skip
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait(pending, timeout=5)


def _retry_count(msg: AbstractIncomingMessage) -> int:
    value = (msg.headers or {}).get(RETRY_COUNT_HEADER, 0)
    try:
        return max(0, int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _own_headers(msg: AbstractIncomingMessage) -> dict[str, Any]:
    """The message's headers without those the broker adds when it dead-letters it."""
    return {
        key: value
        for key, value in (msg.headers or {}).items()
        if key != "x-death" and not key.startswith(("x-first-death-", "x-last-death-"))
    }


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_HEADER_TEXT]


def _message_id(msg: AbstractIncomingMessage) -> str:
    return msg.message_id or f"(no message_id, delivery tag {msg.delivery_tag})"

"""Task 2, the reference solution: a pub/sub ``Logger`` on RabbitMQ. Task text: README.md.

The bus is a DIRECT exchange named ``LoggerConfig.name``. Every started logger has a temporary
queue of its own (exclusive, named by the broker, gone with its connection) bound to the bus
with the routing keys ``info`` and ``critical``. So every logger hears every event, and the
routing key says which handler gets it.

Beyond the task text, this solution:

* hands events to its handlers one at a time, in the order they were published, even when the
  handlers await; up to ``PREFETCH`` events wait in memory meanwhile, so the broker never waits
  for an ack before it sends the next one;
* settles every event: acked once handled; a body that is not a JSON object, or an event whose
  handler raised, is logged and rejected without requeue (a requeued bad event would come back
  forever), and the logger carries on;
* returns from ``info()``/``critical()`` only once the broker has confirmed the event (publisher
  confirms), so a lost event raises in the caller instead of vanishing;
* publishes without ``start()``: a logger that only publishes opens a connection, never a queue;
  one connection serves both publishing and hearing, and is kept for every event;
* reconnects when the connection drops, with a new temporary queue (see below);
* when stopping, stops consuming and lets the handlers finish the events already received (for
  a bounded time) before it closes the connection;
* fails within ``connect_timeout`` with a clear message when no broker answers;
* never shows the password of ``rabbit_url``: reprs and logs mask it.

Why it reconnects by itself rather than with ``aio_pika.connect_robust``: a robust connection
re-declares a robust queue under the name it had, and aio-pika gives an exclusive queue that
name on the client side. When the network partitions, the client sees its connection die, but
the broker may keep its side open, silent, until the heartbeat times out (a minute or more), and
with it the old queue, exclusive to that old connection. Every re-declaration then fails with
``RESOURCE_LOCKED``, and the logger stays deaf although it is connected. So this logger closes
what is left of a broken connection, connects again, and declares a *new* queue with no name,
which the broker names: nothing can hold it yet. Events published while it was away are lost
with the old queue, as they would be for any temporary queue.

Only aio-pika and the standard library: copy it over the stub and it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

LEVELS = ("info", "critical")
PREFETCH = 32  # events received ahead of the handlers: no round trip per event, bounded memory
MAX_RECONNECT_INTERVAL = 30.0

log = logging.getLogger(__name__)


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``****``: fit for logs, reprs and messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable URL>"
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


@dataclass
class LoggerConfig:
    rabbit_url: str
    name: str  # the DIRECT exchange: the bus the events go to
    connect_timeout: float = 10.0  # seconds to connect (and to publish) before giving up
    reconnect_interval: float = 1.0  # first pause before reconnecting; doubles up to 30 s
    stop_timeout: float = 5.0  # how long stop() lets running handlers finish

    def __repr__(self) -> str:
        return f"LoggerConfig(rabbit_url={mask_password(self.rabbit_url)!r}, name={self.name!r})"


class Logger:
    """A client of an event bus: publishes events, and once started hears every event on it.

    Subclass it and override ``handle_info`` / ``handle_critical``.
    """

    def __init__(self, config: LoggerConfig) -> None:
        self.config = config
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._started = False
        self._lock = asyncio.Lock()  # one (re)connection at a time
        self._reconnecting: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()  # events received, not yet handled
        # One event at a time, in delivery order: aio-pika runs _handler in a new task for each
        # delivery, in the order of the deliveries, and an asyncio.Lock lets its waiters in in
        # the order they came (first come, first served).
        self._turn = asyncio.Lock()
        self._waiting: set[asyncio.Task[Any]] = set()  # events received, waiting for the turn
        self._closing: set[asyncio.Task[None]] = set()  # broken connections being closed

    def __repr__(self) -> str:
        state = "started" if self._started else "connected" if self._is_open() else "idle"
        url = mask_password(self.config.rabbit_url)
        return f"<{type(self).__name__} bus={self.config.name!r} url={url!r} {state}>"

    @property
    def queue_name(self) -> str | None:
        """The name the broker gave this logger's temporary queue (None when not listening)."""
        return self._queue.name if self._queue is not None else None

    # ------------------------------------------------------------------ the task's steps

    async def start(self) -> None:
        """Step 1: join the bus and start hearing it; return once consuming has begun.

        Declares the DIRECT exchange ``config.name`` and a temporary queue of this logger's own
        (exclusive, server-named), binds it with ``info`` and ``critical``, and consumes it with
        ``_handler``. Raises ``ConnectionError`` within ``connect_timeout`` if no broker answers.
        """
        if self._started:
            return
        self._started = True
        try:
            async with self._lock:
                if not self._is_open():
                    await self._open()
                elif self._queue is None:  # it was publishing already: add the queue
                    await self._subscribe()
        except BaseException:
            self._started = False
            raise
        log.info("%r listens on queue %r", self, self.queue_name)

    async def stop(self) -> None:
        """Step 2: stop hearing the bus and close the connection. Safe anytime, and twice.

        Cancels the consumer, lets the handlers finish the events already received for at most
        ``stop_timeout`` seconds (those not begun by then are dropped), then closes the
        connection (which removes the temporary queue).
        """
        self._started = False
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
            self._reconnecting = None
        async with self._lock:
            connection, queue, tag = self._connection, self._queue, self._consumer_tag
            self._forget()  # from here on, the connection closing is our doing, not a loss
        if connection is None:
            return
        if queue is not None and tag is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await queue.cancel(tag, timeout=self.config.stop_timeout)
        me = asyncio.current_task()
        others = self._running - {me}
        if others and me not in self._running:  # (a handler that calls stop() holds the turn)
            await asyncio.wait(others, timeout=self.config.stop_timeout)
        for task in tuple(self._waiting - {me}):
            task.cancel()  # an event whose handling never began: dropped, like its queue
        with contextlib.suppress(Exception):
            await connection.close()
        log.info("%r stopped", self)

    async def _handler(self, message: AbstractIncomingMessage) -> None:
        """Step 3: the consumer: decode the event and hand it to the handler of its level.

        Events are handled one at a time, in the order they came. The routing key is the level.
        A body that is not a JSON object, an unknown level or a handler that raises: the event
        is logged and rejected without requeue. Else it is acked.
        """
        task = asyncio.current_task()
        assert task is not None  # aio-pika runs every delivery in a task of its own
        self._running.add(task)
        self._waiting.add(task)
        try:
            async with self._turn:  # one at a time, in the order the events came
                self._waiting.discard(task)
                await self._dispatch(message)
        finally:
            self._running.discard(task)
            self._waiting.discard(task)

    async def info(self, data: dict) -> None:
        """Step 4: publish ``data`` to the bus as JSON with the routing key ``info``.

        Works without ``start()``: connects and declares the bus first if needed. Returns once
        the broker has confirmed the event; raises if it refuses it, or says nothing in time.
        """
        await self._publish("info", data)

    async def critical(self, data: dict) -> None:
        """Step 4: publish ``data`` to the bus as JSON with the routing key ``critical``."""
        await self._publish("critical", data)

    # ------------------------------------------------------------------ override these

    async def handle_info(self, data: dict) -> None:
        """Called with every ``info`` event on the bus (a dict). Override it in a subclass."""
        log.info("%s: %s", self.config.name, data)

    async def handle_critical(self, data: dict) -> None:
        """Called with every ``critical`` event on the bus (a dict). Override it in a subclass."""
        log.critical("%s: %s", self.config.name, data)

    # ------------------------------------------------------------------ async with

    async def __aenter__(self) -> Self:
        """``async with Logger(...) as logger:`` (it does not start it: call start() to listen)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the logger."""
        await self.stop()

    # ------------------------------------------------------------------ inside

    async def _dispatch(self, message: AbstractIncomingMessage) -> None:
        level = message.routing_key
        try:
            data = json.loads(message.body)  # UnicodeDecodeError is a ValueError too
        except ValueError as error:
            await self._drop(message, f"its body is not JSON ({error})")
            return
        if not isinstance(data, dict):
            await self._drop(message, f"its body is JSON but not an object ({type(data).__name__})")
            return
        handler = {"info": self.handle_info, "critical": self.handle_critical}.get(level or "")
        if handler is None:
            await self._drop(message, "its level is neither 'info' nor 'critical'")
            return
        try:
            await handler(data)
        except Exception:
            log.exception(
                "%r: handle_%s raised; the event is dropped (rejected, not requeued)", self, level
            )
            await self._settle(message, ok=False)
            return
        await self._settle(message, ok=True)

    async def _drop(self, message: AbstractIncomingMessage, why: str) -> None:
        log.warning(
            "%r: dropped an event with routing key %r because %s; body: %r",
            self,
            message.routing_key,
            why,
            message.body[:200],
        )
        await self._settle(message, ok=False)

    async def _settle(self, message: AbstractIncomingMessage, *, ok: bool) -> None:
        if message.channel.is_closed:  # its connection was lost (its queue went with it)
            log.debug("%r: an event was handled after its channel closed; nothing to settle", self)
            return
        try:
            if ok:
                await message.ack()
            else:
                await message.reject(requeue=False)
        except Exception as error:  # the channel closed meanwhile; its queue went with it
            log.warning("%r: could not settle an event (%s)", self, error)

    async def _publish(self, level: str, data: dict) -> None:
        if not isinstance(data, dict):
            raise TypeError(f"{level}() takes a dict, got {type(data).__name__}")
        body = json.dumps(data).encode()
        async with self._lock:
            if not self._is_open():
                await self._open()
            exchange = self._exchange
        assert exchange is not None
        message = aio_pika.Message(body, content_type="application/json")
        # Not mandatory: an event nobody listens to is not an error on a bus.
        await exchange.publish(
            message, routing_key=level, mandatory=False, timeout=self.config.connect_timeout
        )

    def _is_open(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    def _forget(self) -> None:
        self._connection = self._channel = self._exchange = self._queue = None
        self._consumer_tag = None

    async def _connect(self) -> AbstractConnection:
        url, timeout = self.config.rabbit_url, self.config.connect_timeout
        try:
            return await aio_pika.connect(url, timeout=timeout)
        except OSError as error:  # refused, unreachable, auth failed (AMQP errors), timed out
            if isinstance(error, TimeoutError):
                reason = f"no answer within {timeout:g} s"
            else:
                reason = f"{type(error).__name__}: {error}"
            raise ConnectionError(
                f"Logger {self.config.name!r} cannot reach RabbitMQ at {mask_password(url)} "
                f"({reason}). Is the broker running, and is the URL right?"
            ) from error

    async def _open(self) -> None:
        """Connect and declare the bus; a started logger also subscribes. Hold ``_lock``."""
        connection = await self._connect()
        try:
            channel = await connection.channel()
            # Default arguments (not durable, not auto-delete): any client declaring it plainly
            # agrees with us, and nobody gets a PRECONDITION_FAILED.
            exchange = await channel.declare_exchange(self.config.name, ExchangeType.DIRECT)
            self._connection, self._channel, self._exchange = connection, channel, exchange
            if self._started:
                await self._subscribe()
        except BaseException:
            self._forget()
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        on_lost = functools.partial(self._on_lost, connection)
        connection.close_callbacks.add(on_lost)
        channel.close_callbacks.add(on_lost)  # a channel closed by the broker is a loss too

    async def _subscribe(self) -> None:
        assert self._channel is not None and self._exchange is not None
        await self._channel.set_qos(prefetch_count=PREFETCH)
        # No name: the broker picks a fresh one (amq.gen-...). Exclusive: only this connection
        # uses it, and the broker deletes it when the connection closes, however that happens.
        queue = await self._channel.declare_queue("", exclusive=True)
        for level in LEVELS:
            await queue.bind(self._exchange, routing_key=level)
        self._consumer_tag = await queue.consume(self._handler)
        self._queue = queue

    def _on_lost(self, connection: AbstractConnection, _sender: object, error: object) -> None:
        if connection is not self._connection:
            return  # an old connection, or one that stop() is closing
        log.warning(
            "%r lost its connection to %s (%s)",
            self,
            mask_password(self.config.rabbit_url),
            error or "closed",
        )
        self._forget()
        if not connection.is_closed:  # only the channel broke: close the rest of it too
            closing = asyncio.create_task(connection.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        if self._started and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.config.reconnect_interval
        while self._started:
            await asyncio.sleep(delay)
            try:
                async with self._lock:
                    if self._is_open() or not self._started:
                        return
                    await self._open()
            except Exception as error:
                delay = min(delay * 2, MAX_RECONNECT_INTERVAL)
                log.warning("%r could not reconnect (%s); next try in %g s", self, error, delay)
            else:
                log.info("%r reconnected; listening on queue %r", self, self.queue_name)
                return

"""A correct Logger in another style than ``logger_student.py``: it must get full marks too.

What differs, and is just as right:

* two connections: one to publish (``connect_robust``, opened by the first ``info()`` under a
  lock, and reconnected by aio-pika), and one to hear the bus, which RabbitMQ advises so that a
  publisher held back by flow control does not hold up its consumer;
* a listening task with a reconnect loop of its own and plain ``aio_pika.connect``: each round
  declares a new server-named queue, so a queue the broker still holds after a partition is
  never asked for again; it pauses between rounds, and ``stop()`` cancels it;
* ``queue.iterator(no_ack=True)``: events come one at a time, in order, and are settled by the
  broker on delivery (no ack to send); ``_handler`` catches what a handler raises, so that one
  bad event cannot end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Self

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)

RETRY_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass
class LoggerConfig:
    rabbit_url: str = field(repr=False)  # it holds the password: keep it out of printouts
    name: str  # the exchange, i.e. the bus that events go to


class Logger:
    def __init__(self, config: LoggerConfig) -> None:
        self.config = config
        # The publishing side, set up by the first info()/critical().
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None
        self._listening: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Step 1: join the bus and start hearing it; return once consuming has begun."""
        if self._listening is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listening = asyncio.create_task(self._listen(ready))
        try:
            await ready
        except BaseException:
            await self._stop_listening()
            raise

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        while True:
            try:
                async with await aio_pika.connect(self.config.rabbit_url) as connection:
                    channel = await connection.channel()
                    exchange = await channel.declare_exchange(
                        self.config.name, aio_pika.ExchangeType.DIRECT
                    )
                    queue = await channel.declare_queue(exclusive=True)
                    await queue.bind(exchange, routing_key="info")
                    await queue.bind(exchange, routing_key="critical")
                    async with queue.iterator(no_ack=True) as events:
                        if not ready.done():
                            ready.set_result(None)
                        async for message in events:  # ends when the connection is lost
                            await self._handler(message)
            except Exception as error:
                if not ready.done():  # the first round failed: start() raises it
                    ready.set_exception(error)
                    return
                log.warning("lost the bus %r (%s); listening again soon", self.config.name, error)
            await asyncio.sleep(RETRY_SECONDS)

    async def _stop_listening(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None

    async def stop(self) -> None:
        """Step 2: close the connection to RabbitMQ (its temporary queue goes with it)."""
        await self._stop_listening()
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    async def _handler(self, message: AbstractIncomingMessage) -> None:
        """Step 3: the queue's consumer: decode the event and call the handler of its level."""
        try:
            data = json.loads(message.body)
        except ValueError:
            log.warning("dropped an event that is not JSON: %r", message.body[:200])
            return
        if not isinstance(data, dict):
            log.warning("dropped an event that is not a JSON object: %r", data)
            return
        try:
            if message.routing_key == "info":
                await self.handle_info(data)
            elif message.routing_key == "critical":
                await self.handle_critical(data)
        except Exception:
            log.exception(
                "the handler of a %s event raised; the event is dropped", message.routing_key
            )

    async def _publish(self, routing_key: str, data: dict) -> None:
        async with self._lock:  # when the first events come at once, only the first connects
            if self.connection is None:
                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
                self.channel = await self.connection.channel()
                self.exchange = await self.channel.declare_exchange(
                    self.config.name, aio_pika.ExchangeType.DIRECT
                )
        assert self.exchange is not None
        body = json.dumps(data).encode()
        await self.exchange.publish(aio_pika.Message(body), routing_key=routing_key)

    async def info(self, data: dict) -> None:
        """Step 4: publish ``data`` to the bus as JSON, with the routing key ``"info"``."""
        await self._publish("info", data)

    async def critical(self, data: dict) -> None:
        """Step 4: publish ``data`` to the bus as JSON, with the routing key ``"critical"``."""
        await self._publish("critical", data)

    async def handle_info(self, data: dict) -> None:
        """Called with every ``info`` event on the bus (a dict). Override it in a subclass."""

    async def handle_critical(self, data: dict) -> None:
        """Called with every ``critical`` event on the bus (a dict). Override it in a subclass."""

    async def __aenter__(self) -> Self:
        """``async with MyLogger(...) as logger:`` (this does not start it)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the logger."""
        await self.stop()

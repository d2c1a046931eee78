"""A plain, correct Logger, written the way a student would: the base of most logger mistakes.

It is the stub filled in as the task text hints, nothing more: one ``connect_robust`` connection
for publishing and hearing, opened under a lock (so that the first events, sent at once, share
it); ``prefetch_count=1``, so the broker hands over the next event only
once ``_handler`` has acked the last one (one at a time, in order); ``message.process()`` acks,
or rejects without requeue an event whose handling raised; and after a reconnect, a reconnect
callback declares a new queue (``robust=False``, so aio-pika does not re-declare the old one,
which the broker may still hold after a network partition). The mistakes in
``course.mistakes.logger`` are small edits of this file, so keep the lines they edit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Self

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)


@dataclass
class LoggerConfig:
    rabbit_url: str = field(repr=False)  # it holds the password: keep it out of printouts
    name: str  # the exchange, i.e. the bus that events go to


class Logger:
    def __init__(self, config: LoggerConfig) -> None:
        self.config = config
        # Set these up in start(), or in info()/critical() for a logger that only publishes.
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        async with self._lock:  # when the first events come at once, only the first connects
            if self.connection is None:
                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
                self.channel = await self.connection.channel()
                self.exchange = await self.channel.declare_exchange(
                    self.config.name, aio_pika.ExchangeType.DIRECT
                )

    async def start(self) -> None:
        """Step 1: join the bus and start hearing it; return once consuming has begun."""
        await self._connect()
        await self.channel.set_qos(prefetch_count=1)
        await self._listen()
        self.connection.reconnect_callbacks.add(self._on_reconnect)

    async def _listen(self) -> None:
        queue = await self.channel.declare_queue(exclusive=True, robust=False)
        await queue.bind(self.exchange, routing_key="info")
        await queue.bind(self.exchange, routing_key="critical")
        await queue.consume(self._handler)

    async def _on_reconnect(self, connection: AbstractConnection) -> None:
        await self._listen()  # a new queue: the old one went (or is going) with the old connection

    async def stop(self) -> None:
        """Step 2: close the connection to RabbitMQ (its temporary queue goes with it)."""
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    async def _handler(self, message: AbstractIncomingMessage) -> None:
        """Step 3: the queue's consumer: decode the event and call the handler of its level."""
        async with message.process():
            data = json.loads(message.body)
            if not isinstance(data, dict):
                raise ValueError(f"the event is not a JSON object: {data!r}")
            if message.routing_key == "info":
                await self.handle_info(data)
            elif message.routing_key == "critical":
                await self.handle_critical(data)

    async def _publish(self, routing_key: str, data: dict) -> None:
        await self._connect()
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

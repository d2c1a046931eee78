"""A correct Task 1 solution in another style: the worker reads its queue with ``queue.iterator()``.

start() opens the iterator (which registers the consumer) and reads it in a background task
that starts one ``_worker`` task per message; the prefetch keeps them at ``capacity``. A failed
task is requeued once (``requeue=not msg.redelivered``). The catalogue proves the graded suite
gives it full marks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueueIterator

log = logging.getLogger(__name__)


@dataclass
class WorkerClientConfig:
    rabbit_url: str
    queue_name: str


class WorkerClient:
    def __init__(self, config: WorkerClientConfig) -> None:
        self.config = config
        self.connection = None
        self.channel = None
        self.connecting = asyncio.Lock()

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def put(self, data: dict) -> None:
        """Publish one persistent JSON task, confirmed by the broker."""
        async with self.connecting:
            if self.channel is None:
                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
                self.channel = await self.connection.channel(publisher_confirms=True)
                await self.channel.declare_queue(self.config.queue_name, durable=True)
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(data).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.config.queue_name,
        )

    async def stop(self) -> None:
        """Close the connection, if any."""
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            await connection.close()


@dataclass
class WorkerConfig:
    rabbit_url: str
    queue_name: str
    capacity: int = 1


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.connection = None
        self.messages: AbstractQueueIterator | None = None
        self.reader: asyncio.Task | None = None
        self.running: set[asyncio.Task] = set()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def handler(self, msg: AbstractIncomingMessage) -> None:
        """Process one task (subclasses override it)."""
        raise NotImplementedError

    async def _worker(self, msg: AbstractIncomingMessage) -> None:
        """Handle one message: ack on success, requeue a first failure, drop a second one."""
        try:
            await self.handler(msg)
        except Exception:
            if msg.redelivered:
                log.exception("task failed twice, dropping it: %r", msg.body[:100])
            await msg.nack(requeue=not msg.redelivered)
        else:
            await msg.ack()

    async def start(self) -> None:
        """Connect, set the prefetch, declare the queue, open the iterator and read it."""
        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.config.capacity)
        queue = await channel.declare_queue(self.config.queue_name, durable=True)
        self.messages = queue.iterator()
        await self.messages.consume()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.messages is not None
        async for msg in self.messages:
            task = asyncio.create_task(self._worker(msg))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def stop(self) -> None:
        """Close the iterator (no more messages), wait for the running tasks, disconnect."""
        if self.messages is not None:
            await self.messages.close()
        if self.running:
            await asyncio.wait(self.running)
        if self.reader is not None:
            self.reader.cancel()
        if self.connection is not None:
            await self.connection.close()

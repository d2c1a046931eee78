"""A correct Task 1 solution in another style: a semaphore of ``capacity`` with the same prefetch,
and retries counted in a header.

A failed task is published again (persistent, with ``x-tries`` one higher) and the original
acked; after 3 tries it is dropped with a log line. The client keeps its channel on ``self`` and
declares the queue once. The catalogue proves the graded suite gives it full marks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger(__name__)
MAX_TRIES = 3


@dataclass
class WorkerClientConfig:
    rabbit_url: str
    queue_name: str


class WorkerClient:
    def __init__(self, config: WorkerClientConfig) -> None:
        self.config = config
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.lock = asyncio.Lock()

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def put(self, data: dict) -> None:
        """Publish one persistent JSON task, confirmed by the broker."""
        async with self.lock:
            if self.connection is None:
                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
                self.channel = await self.connection.channel()
                await self.channel.declare_queue(self.config.queue_name, durable=True)
        body = json.dumps(data).encode()
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self.channel.default_exchange.publish(message, routing_key=self.config.queue_name)

    async def stop(self) -> None:
        """Close the connection, if any."""
        async with self.lock:
            if self.connection is not None:
                await self.connection.close()
                self.connection = None


@dataclass
class WorkerConfig:
    rabbit_url: str
    queue_name: str
    capacity: int = 1


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.slots = asyncio.Semaphore(config.capacity)
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def handler(self, msg: AbstractIncomingMessage) -> None:
        """Process one task (subclasses override it)."""
        raise NotImplementedError

    async def _worker(self, msg: AbstractIncomingMessage) -> None:
        """Run the handler within the capacity; ack it, or retry it (3 tries in all)."""
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            async with self.slots:
                try:
                    await self.handler(msg)
                except Exception:
                    await self._retry(msg)
                else:
                    await msg.ack()
        finally:
            self.tasks.discard(task)

    async def _retry(self, msg: AbstractIncomingMessage) -> None:
        tries = int((msg.headers or {}).get("x-tries", 1))
        if tries >= MAX_TRIES:
            log.exception("task failed %d times, dropping it: %r", tries, msg.body[:100])
        else:
            again = aio_pika.Message(
                msg.body,
                headers={"x-tries": tries + 1},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await self.channel.default_exchange.publish(again, routing_key=self.config.queue_name)
        await msg.ack()

    async def start(self) -> None:
        """Connect, declare the queue, set the prefetch to capacity and consume."""
        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.config.capacity)
        self.queue = await self.channel.declare_queue(self.config.queue_name, durable=True)
        self.consumer_tag = await self.queue.consume(self._worker)

    async def stop(self) -> None:
        """Cancel the consumer, let the running handlers finish, close the connection."""
        if self.connection is None:
            return
        await self.queue.cancel(self.consumer_tag)
        if self.tasks:
            await asyncio.wait(self.tasks)
        await self.connection.close()
        self.connection = None

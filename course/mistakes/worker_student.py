"""A plain, correct Task 1 solution, written the way a student would (starred step included).

The mistake catalogue (course/mistakes/worker.py) makes its typical wrong Workers as small edits
of this file, and proves that the graded suite passes it and rejects each of them. A failed task
is given back once (``requeue=not msg.redelivered``): two tries in all, then it is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger(__name__)


@dataclass
class WorkerClientConfig:
    rabbit_url: str
    queue_name: str


class WorkerClient:
    def __init__(self, config: WorkerClientConfig) -> None:
        self.config = config
        self.connection = None
        self.lock = asyncio.Lock()  # puts made at once: only the first one connects

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def put(self, data: dict) -> None:
        """Send data as a persistent JSON task to the queue; the broker confirms it."""
        async with self.lock:
            if self.connection is None:
                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
                self.channel = await self.connection.channel()
                await self.channel.declare_queue(self.config.queue_name, durable=True)
        message = aio_pika.Message(
            body=json.dumps(data).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self.channel.default_exchange.publish(message, routing_key=self.config.queue_name)

    async def stop(self) -> None:
        """Close the connection."""
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
        self.connection = None
        self.queue = None
        self.consumer_tag = None
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
        """Run the handler; ack on success, give the message back once on failure."""
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self.handler(msg)
        except Exception:
            log.exception("task failed (redelivered: %s)", msg.redelivered)
            await msg.nack(requeue=not msg.redelivered)
        else:
            await msg.ack()
        finally:
            self.tasks.discard(task)

    async def start(self) -> None:
        """Connect, declare the queue, limit the prefetch and consume."""
        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.config.capacity)
        self.queue = await channel.declare_queue(self.config.queue_name, durable=True)
        self.consumer_tag = await self.queue.consume(self._worker)

    async def stop(self) -> None:
        """Stop consuming, wait for the running handlers, close the connection."""
        if self.queue is not None and self.consumer_tag is not None:
            await self.queue.cancel(self.consumer_tag)
        if self.tasks:
            await asyncio.wait(self.tasks)
        if self.connection is not None:
            await self.connection.close()

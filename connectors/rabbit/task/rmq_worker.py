"""Task 1: a job worker that takes tasks from a RabbitMQ queue, and the client that gives it work.

The task text, with its steps and hints, is in connectors/rabbit/task/README.md ("Task 1").
Replace every `raise NotImplementedError` below, one step at a time, and check with:

    pytest tests/connectors/rabbit/test_rmq_worker.py -vv

The work queue is durable and the tasks persistent: both survive a broker restart, and
RabbitMQ 4.3 refuses to declare a shared queue that is not durable.
"""

from __future__ import annotations

import json  # noqa: F401 - you will need it
from dataclasses import dataclass

import aio_pika  # noqa: F401 - you will need it
from aio_pika.abc import AbstractIncomingMessage


@dataclass
class WorkerClientConfig:
    rabbit_url: str  # e.g. "amqp://guest:guest@localhost:5672/"
    queue_name: str  # the queue the tasks go to


class WorkerClient:
    """Puts tasks (dicts) into the worker's queue."""

    def __init__(self, config: WorkerClientConfig) -> None:
        """Keep the config. Nothing connects yet: put() does, the first time."""
        self.config = config
        self.connection = None  # put() opens it the first time it is called

    async def __aenter__(self) -> WorkerClient:
        """`async with WorkerClient(config) as client:` gives the client itself."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the `async with` block stops the client."""
        await self.stop()

    async def put(self, data: dict) -> None:
        """Client step 1: send `data` as a persistent JSON task to the queue `config.queue_name`.

        The first call connects and declares the queue (durable=True), under an asyncio.Lock
        since puts may come at once; every call reuses that one connection. Publish through the
        default exchange (routing key: the queue name) and return once the broker has confirmed
        the task.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        """Client step 2: close the connection, if put() opened one."""
        raise NotImplementedError


@dataclass
class WorkerConfig:
    rabbit_url: str  # e.g. "amqp://guest:guest@localhost:5672/"
    queue_name: str  # the queue the tasks come from
    capacity: int = 1  # at most this many handlers may run at the same time


class Worker:
    """Takes tasks from the queue and runs `handler` on each, at most `capacity` at a time.

    Subclass it and override `handler` (see run_worker.py).
    """

    def __init__(self, config: WorkerConfig) -> None:
        """Keep the config. Nothing connects yet: start() does."""
        self.config = config
        self.connection = None  # start() opens it

    async def __aenter__(self) -> Worker:
        """`async with MyWorker(config) as worker:` starts the worker."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the `async with` block stops the worker."""
        await self.stop()

    async def handler(self, msg: AbstractIncomingMessage) -> None:
        """Process one task. Subclasses override this; you do not need to change it."""
        raise NotImplementedError("subclass Worker and override handler()")

    async def _worker(self, msg: AbstractIncomingMessage) -> None:
        """Step 1: call `self.handler(msg)`; ack the message when it succeeds, reject it if not.

        start() registers this method as the queue's consumer: it runs once per message. A
        handler that raises must never stall the worker. Step 5 [*]: retry a failed task, at
        most 3 tries in all.
        """
        raise NotImplementedError

    async def start(self) -> None:
        """Step 2: connect, declare the queue (durable=True), register `self._worker` to consume.

        Return right away: messages are handled in the background, start() must not wait for
        them. Step 4 adds the capacity limit here too.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        """Step 3: close the connection to RabbitMQ.

        Step 5 [*]: first stop taking new messages and let the running handlers finish.
        """
        raise NotImplementedError

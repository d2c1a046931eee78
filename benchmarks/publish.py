"""Figure 3: ``WorkerClient.put`` against raw aio-pika publishing with confirms.

Both send the same message to the same queue: a JSON body, ``content_type`` JSON, persistent,
a ``message_id`` and a timestamp, ``mandatory``, on a channel with publisher confirms (each
publish returns once the broker has confirmed it). The raw publisher is what one writes by
hand: ``connect_robust``, ``channel()``, ``declare_queue``, then
``channel.default_exchange.publish(...)`` for each task.

* sequential: one task after the other, each awaited: the broker's round trip dominates;
* concurrent: ``CONCURRENCY`` coroutines each putting their share through one client.

Connecting is not timed: each contender sends one task first. The queue is purged between runs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import DeliveryMode

from benchmarks.common import (
    QUICK,
    delete_queues,
    median,
    quartiles,
    ratio,
    reference,
    rotate,
    unique,
)

SEQUENTIAL_MESSAGES = 300 if QUICK else 2000
CONCURRENT_MESSAGES = 1000 if QUICK else 5000
CONCURRENCY = 50
ROUNDS = 2 if QUICK else 9

Put = Callable[[dict], Awaitable[None]]


async def _drive(put: Put, n: int, concurrency: int) -> float:
    """Put ``n`` tasks with ``concurrency`` coroutines; tasks per second."""
    per_coroutine = n // concurrency

    async def one_coroutine(offset: int) -> None:
        for i in range(per_coroutine):
            await put({"type": "event", "number": offset + i})

    started = time.perf_counter()
    await asyncio.gather(*(one_coroutine(c * per_coroutine) for c in range(concurrency)))
    return per_coroutine * concurrency / (time.perf_counter() - started)


async def run_reference(url: str, queue: str, n: int, concurrency: int) -> float:
    module = reference("rmq_worker")
    async with module.WorkerClient(module.WorkerClientConfig(url, queue)) as client:
        await client.put({"warm": "up"})
        return await _drive(client.put, n, concurrency)


async def run_raw(url: str, queue: str, n: int, concurrency: int) -> float:
    connection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)  # as WorkerClient.put() does
        exchange = channel.default_exchange

        async def put(data: dict) -> None:
            message = aio_pika.Message(
                json.dumps(data, ensure_ascii=False).encode(),
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                message_id=uuid.uuid4().hex,
                timestamp=datetime.now(UTC),
            )
            await exchange.publish(message, routing_key=queue)

        await put({"warm": "up"})
        return await _drive(put, n, concurrency)
    finally:
        await connection.close()


CONTENDERS = {"raw": run_raw, "put": run_reference}


async def _purge(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)  # created on the first run
        await declared.purge()
    finally:
        await connection.close()


async def publishing(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 3: tasks per second, put() and raw, sequential and concurrent."""
    modes = {
        "sequential": (SEQUENTIAL_MESSAGES, 1),
        "concurrent": (CONCURRENT_MESSAGES, CONCURRENCY),
    }
    rates = {mode: {name: [] for name in CONTENDERS} for mode in modes}
    queue = unique("publish")
    try:
        for round_number in range(ROUNDS):
            for mode, (n, concurrency) in modes.items():
                for name in rotate(list(CONTENDERS), round_number):
                    await _purge(url, queue)
                    rate = await CONTENDERS[name](url, queue, n, concurrency)
                    rates[mode][name].append(rate)
                    say(f"  fig 3 round {round_number + 1}: {mode:10} {name:4} {rate:7.0f}/s")
    finally:
        await delete_queues(url, [queue])
    rows = {}
    for mode, by_name in rates.items():
        put_vs_raw = list(map(ratio, by_name["put"], by_name["raw"]))
        rows[mode] = {
            "messages": modes[mode][0],
            "concurrency": modes[mode][1],
            "rounds": ROUNDS,
            "put_per_s": median(by_name["put"]),
            "raw_per_s": median(by_name["raw"]),
            "put_vs_raw": median(put_vs_raw),
            "put_vs_raw_quartiles": quartiles(put_vs_raw),
            "samples": by_name,
        }
    return rows

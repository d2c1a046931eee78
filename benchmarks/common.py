"""What every benchmark shares: the sizes, names, a probe that times handlers, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import DeliveryMode

from course import impl

QUICK = os.environ.get("BENCH_QUICK", "").strip() not in ("", "0")


def reference(name: str):  # type: ignore[no-untyped-def]
    """The reference module ``rmq_worker`` or ``rmq_logger``."""
    return impl.load("solutions", name)


def unique(what: str) -> str:
    """A queue or exchange name of our own, so that runs never meet."""
    return f"bench.{what}.{uuid.uuid4().hex[:10]}"


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def quartiles(values: Iterable[float]) -> list[float]:
    """The first and third quartiles: how far the rounds spread around the median."""
    values = list(values)
    if len(values) < 2:
        return values * 2
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return [first, third]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0 < fraction <= 1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rotate(items: Sequence, by: int) -> list:
    """``items`` started at position ``by``: each round runs the contenders in another order."""
    by %= len(items)
    return [*items[by:], *items[:by]]


@dataclass
class Probe:
    """Counts handler calls; times the first start to the ``expected``-th end."""

    expected: int
    started: int = 0
    finished: int = 0
    first_start: float = 0.0
    last_end: float = 0.0
    first_cpu: float = 0.0
    last_cpu: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        if not self.started:
            self.first_start = time.perf_counter()
            self.first_cpu = time.process_time()
        self.started += 1

    def end(self) -> None:
        self.finished += 1
        if self.finished == self.expected:
            self.last_end = time.perf_counter()
            self.last_cpu = time.process_time()
            self.done.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"only {self.finished} of {self.expected} messages handled in {timeout:g} s"
            ) from None

    @property
    def rate(self) -> float:
        """Messages per second between the first handler start and the last handler end."""
        return self.expected / (self.last_end - self.first_start)

    @property
    def cpu_us(self) -> float:
        """This process's CPU time per message over the same span, in microseconds."""
        return (self.last_cpu - self.first_cpu) / self.expected * 1e6


def task_body(number: int) -> bytes:
    """The body ``WorkerClient.put({"type": "event", "number": n})`` sends."""
    return json.dumps({"type": "event", "number": number}, ensure_ascii=False).encode()


async def prefill(
    channel: aio_pika.abc.AbstractChannel, queue: str, bodies: Iterable[bytes], batch: int = 500
) -> int:
    """Publish ``bodies`` to ``queue`` as persistent JSON, with confirms, ``batch`` at a time."""
    sent, pending = 0, []
    exchange = channel.default_exchange
    for body in bodies:
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=DeliveryMode.PERSISTENT
        )
        pending.append(exchange.publish(message, routing_key=queue))
        if len(pending) >= batch:
            await asyncio.gather(*pending)
            sent, pending = sent + len(pending), []
    await asyncio.gather(*pending)
    return sent + len(pending)


async def wait_until_queued(
    channel: aio_pika.abc.AbstractChannel, queue: str, count: int, timeout: float = 30.0
) -> None:
    """Wait until the broker reports ``count`` ready messages in ``queue``."""
    deadline = time.monotonic() + timeout
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        ready = declared.declaration_result.message_count
        if ready >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue}: {ready} of {count} messages ready after {timeout:g} s")
        await asyncio.sleep(0.05)


async def delete_queues(url: str, names: Iterable[str]) -> None:
    """Delete the queues we declared (each with its own channel: a missing one closes it)."""
    connection = await aio_pika.connect(url)
    try:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(Exception):  # already gone
                await channel.queue_delete(name)
            if not channel.is_closed:
                await channel.close()
    finally:
        await connection.close()


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")

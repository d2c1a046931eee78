"""Figures 1 and 2: how fast the reference Worker drains a queue, against raw aio-pika.

Each run fills a fresh queue with ``n`` tasks, then starts one consumer on it and times the
first handler start to the ``n``-th handler end (connecting and declaring are not timed). The
contenders take turns, round after round, on the same broker, so that a slow moment of the
machine hits them all alike; ratios are taken within a round, and the median over the rounds
is reported.

* ``worker``: the reference ``Worker`` (``WorkerConfig(capacity=c)``), handler does nothing;
* ``raw``: what one writes by hand: ``connect_robust``, ``set_qos(prefetch_count=c)``,
  ``queue.consume(on_message)`` where ``on_message`` runs the handler, then ``msg.ack()``;
* ``peer``: aio-pika's own ``patterns.Master.create_worker`` on a channel with the same prefetch.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.patterns import Master

from benchmarks.common import (
    QUICK,
    Probe,
    delete_queues,
    median,
    prefill,
    ratio,
    reference,
    rotate,
    task_body,
    unique,
)

Run = Callable[[str, str, int, Probe, float], Awaitable[None]]

# Figure 1: messages per run and capacity; rounds of (raw, worker, peer).
THROUGHPUT_CAPACITIES = (1, 10, 100)
THROUGHPUT_MESSAGES = {1: 400, 10: 1000, 100: 1500} if QUICK else {1: 3000, 10: 8000, 100: 12000}
THROUGHPUT_ROUNDS = 2 if QUICK else 5
# Figure 2: a handler that awaits 50 ms; `batches` times `capacity` messages per run.
WORK_SECONDS = 0.05
EFFICIENCY_CAPACITIES = (10, 100)
EFFICIENCY_BATCHES = 10 if QUICK else 40
EFFICIENCY_ROUNDS = 1 if QUICK else 3


def _timeout(n: int, delay: float, capacity: int) -> float:
    return 30.0 + n / 200 + n * delay / capacity * 2


async def _handle(probe: Probe, delay: float) -> None:
    probe.start()
    if delay:
        await asyncio.sleep(delay)
    probe.end()


async def run_worker(url: str, queue: str, capacity: int, probe: Probe, delay: float) -> None:
    module = reference("rmq_worker")

    class BenchWorker(module.Worker):
        async def handler(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            await _handle(probe, delay)

    worker = BenchWorker(module.WorkerConfig(url, queue, capacity=capacity))
    await worker.start()
    try:
        await probe.wait(_timeout(probe.expected, delay, capacity))
    finally:
        await worker.stop()


async def run_raw(url: str, queue: str, capacity: int, probe: Probe, delay: float) -> None:
    connection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=capacity)
        declared = await channel.declare_queue(queue)

        async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            await _handle(probe, delay)
            await msg.ack()

        await declared.consume(on_message)
        await probe.wait(_timeout(probe.expected, delay, capacity))
    finally:
        await connection.close()


async def run_peer(url: str, queue: str, capacity: int, probe: Probe, delay: float) -> None:
    connection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=capacity)
        master = Master(channel)

        async def job(**_task: object) -> None:
            await _handle(probe, delay)

        await master.create_worker(queue, job)
        await probe.wait(_timeout(probe.expected, delay, capacity))
    finally:
        await connection.close()


CONTENDERS: dict[str, Run] = {"raw": run_raw, "worker": run_worker, "peer": run_peer}


async def one_run(url: str, name: str, capacity: int, n: int, delay: float) -> float:
    """Fill a fresh queue with ``n`` tasks, drain it with contender ``name``; messages/s."""
    queue = unique(f"worker.{name}.c{capacity}")
    pickled = name == "peer"  # Master's tasks are pickled keyword arguments
    bodies = (
        pickle.dumps({"type": "event", "number": i}) if pickled else task_body(i) for i in range(n)
    )
    try:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            await channel.declare_queue(queue)
            await prefill(channel, queue, bodies)
        finally:
            await connection.close()
        probe = Probe(n)
        await CONTENDERS[name](url, queue, capacity, probe, delay)
        return probe.rate
    finally:
        await delete_queues(url, [queue])


async def throughput(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 1: rates of worker, raw and peer at each capacity, a no-op handler."""
    rates: dict[int, dict[str, list[float]]] = {
        c: {name: [] for name in CONTENDERS} for c in THROUGHPUT_CAPACITIES
    }
    for round_number in range(THROUGHPUT_ROUNDS):
        for capacity in THROUGHPUT_CAPACITIES:
            for name in rotate(list(CONTENDERS), round_number + capacity):
                n = THROUGHPUT_MESSAGES[capacity]
                rate = await one_run(url, name, capacity, n, 0.0)
                rates[capacity][name].append(rate)
                shown = f"capacity {capacity:3} {name:6} {rate:.0f}/s"
                say(f"  fig 1 round {round_number + 1}: {shown}")
    rows = {}
    for capacity, by_name in rates.items():
        raw = by_name["raw"]
        rows[capacity] = {
            "messages": THROUGHPUT_MESSAGES[capacity],
            "rounds": THROUGHPUT_ROUNDS,
            **{f"{name}_per_s": median(values) for name, values in by_name.items()},
            "worker_vs_raw": median(map(ratio, by_name["worker"], raw)),
            "peer_vs_raw": median(map(ratio, by_name["peer"], raw)),
            "samples": by_name,
        }
    return rows


async def efficiency(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 2: rate against the ideal capacity / 50 ms, for worker and raw."""
    names = ("raw", "worker")
    achieved: dict[int, dict[str, list[float]]] = {
        c: {name: [] for name in names} for c in EFFICIENCY_CAPACITIES
    }
    for round_number in range(EFFICIENCY_ROUNDS):
        for capacity in EFFICIENCY_CAPACITIES:
            ideal = capacity / WORK_SECONDS
            for name in rotate(list(names), round_number):
                n = capacity * EFFICIENCY_BATCHES
                rate = await one_run(url, name, capacity, n, WORK_SECONDS)
                achieved[capacity][name].append(rate / ideal)
                say(
                    f"  fig 2 round {round_number + 1}: capacity {capacity:3} {name:6} "
                    f"{rate:6.0f}/s of {ideal:.0f}/s = {rate / ideal:.3f}"
                )
    return {
        capacity: {
            "messages": capacity * EFFICIENCY_BATCHES,
            "rounds": EFFICIENCY_ROUNDS,
            "ideal_per_s": capacity / WORK_SECONDS,
            "worker_efficiency": median(by_name["worker"]),
            "raw_efficiency": median(by_name["raw"]),
            "samples": by_name,
        }
        for capacity, by_name in achieved.items()
    }

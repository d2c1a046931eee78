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
    quartiles,
    ratio,
    reference,
    rotate,
    task_body,
    unique,
)

Run = Callable[[str, str, int, Probe, float], Awaitable[None]]

# Figure 1: messages per run (a run takes about a second), rounds of (raw, worker, peer, raw2).
# Many short rounds rather than a few long ones: the noise of a shared machine comes in bursts.
THROUGHPUT_CAPACITIES = (1, 10, 100)
THROUGHPUT_MESSAGES = {1: 200, 10: 500, 100: 600} if QUICK else {1: 1000, 10: 2500, 100: 2500}
THROUGHPUT_ROUNDS = 2 if QUICK else 15
# Figure 2: a handler that awaits 50 ms; `batches` times `capacity` messages per run. Capacity 1
# is there for context (the cost of one round trip per task); the figure is 10 and 100.
WORK_SECONDS = 0.05
EFFICIENCY_CAPACITIES = (1, 10, 100)
EFFICIENCY_FIGURE = (10, 100)
EFFICIENCY_BATCHES = 10 if QUICK else 40
EFFICIENCY_ROUNDS = 1 if QUICK else 5


def _timeout(n: int, delay: float, capacity: int) -> float:
    return 30.0 + n / 200 + n * delay / capacity * 2


async def _handle(probe: Probe, delay: float) -> None:
    """The raw consumer's handler; the Worker's and the peer's have the same body, inline."""
    probe.start()
    if delay:
        await asyncio.sleep(delay)
    probe.end()


async def run_worker(
    url: str, queue: str, capacity: int, probe: Probe, delay: float, prefetch: int | None = None
) -> None:
    module = reference("rmq_worker")

    class BenchWorker(module.Worker):
        async def handler(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            probe.start()
            if delay:
                await asyncio.sleep(delay)
            probe.end()

    config = module.WorkerConfig(url, queue, capacity=capacity, prefetch_count=prefetch)
    worker = BenchWorker(config)
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
        declared = await channel.declare_queue(queue, durable=True)  # as the Worker does

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
            probe.start()
            if delay:
                await asyncio.sleep(delay)
            probe.end()

        await master.create_worker(queue, job, durable=True)
        await probe.wait(_timeout(probe.expected, delay, capacity))
    finally:
        await connection.close()


async def run_worker_prefetch(
    url: str, queue: str, capacity: int, probe: Probe, delay: float
) -> None:
    """The reference with its opt-in ``prefetch_count=2 * capacity``: not the default."""
    await run_worker(url, queue, capacity, probe, delay, prefetch=2 * capacity)


CONTENDERS: dict[str, Run] = {"raw": run_raw, "worker": run_worker, "peer": run_peer}
# raw2 is raw once more, in the same rounds: raw2 / raw shows how far noise alone moves a ratio.
EXTRA: dict[str, Run] = {"raw2": run_raw, "prefetch2x": run_worker_prefetch}
THROUGHPUT_CONTENDERS = ("raw", "worker", "peer", "raw2")


async def one_run(url: str, name: str, capacity: int, n: int, delay: float) -> Probe:
    """Fill a fresh queue with ``n`` tasks, drain it with contender ``name``: the probe."""
    queue = unique(f"worker.{name}.c{capacity}")
    pickled = name == "peer"  # Master's tasks are pickled keyword arguments
    bodies = (
        pickle.dumps({"type": "event", "number": i}) if pickled else task_body(i) for i in range(n)
    )
    try:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)  # the work queue of the task
            await prefill(channel, queue, bodies)
        finally:
            await connection.close()
        probe = Probe(n)
        await {**CONTENDERS, **EXTRA}[name](url, queue, capacity, probe, delay)
        return probe
    finally:
        await delete_queues(url, [queue])


async def throughput(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 1: rates of worker, raw and peer at each capacity, a no-op handler."""
    rates = {c: {name: [] for name in THROUGHPUT_CONTENDERS} for c in THROUGHPUT_CAPACITIES}
    cpu = {c: {name: [] for name in THROUGHPUT_CONTENDERS} for c in THROUGHPUT_CAPACITIES}
    for round_number in range(THROUGHPUT_ROUNDS):
        for capacity in THROUGHPUT_CAPACITIES:
            for name in rotate(THROUGHPUT_CONTENDERS, round_number + capacity):
                n = THROUGHPUT_MESSAGES[capacity]
                probe = await one_run(url, name, capacity, n, 0.0)
                rates[capacity][name].append(probe.rate)
                cpu[capacity][name].append(probe.cpu_us)
                shown = f"{probe.rate:.0f}/s, {probe.cpu_us:.0f} us CPU/message"
                say(f"  fig 1 round {round_number + 1}: capacity {capacity:3} {name:6} {shown}")
    rows = {}
    for capacity, by_name in rates.items():
        worker_vs_raw = list(map(ratio, by_name["worker"], by_name["raw"]))
        peer_vs_raw = list(map(ratio, by_name["peer"], by_name["raw"]))
        raw2_vs_raw = list(map(ratio, by_name["raw2"], by_name["raw"]))
        rows[capacity] = {
            "messages": THROUGHPUT_MESSAGES[capacity],
            "rounds": THROUGHPUT_ROUNDS,
            **{f"{name}_per_s": median(values) for name, values in by_name.items()},
            "worker_vs_raw": median(worker_vs_raw),
            "worker_vs_raw_quartiles": quartiles(worker_vs_raw),
            "peer_vs_raw": median(peer_vs_raw),
            "peer_vs_raw_quartiles": quartiles(peer_vs_raw),
            "raw2_vs_raw": median(raw2_vs_raw),
            "raw2_vs_raw_quartiles": quartiles(raw2_vs_raw),
            **{f"{name}_cpu_us": median(values) for name, values in cpu[capacity].items()},
            "per_s_samples": by_name,
            "cpu_us_samples": cpu[capacity],
        }
    return rows


async def efficiency(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 2: rate against the ideal capacity / 50 ms, for worker and raw."""
    names = ("raw", "worker", "prefetch2x")
    achieved = {c: {name: [] for name in names} for c in EFFICIENCY_CAPACITIES}
    for round_number in range(EFFICIENCY_ROUNDS):
        for capacity in EFFICIENCY_CAPACITIES:
            ideal = capacity / WORK_SECONDS
            for name in rotate(list(names), round_number):
                n = capacity * EFFICIENCY_BATCHES
                rate = (await one_run(url, name, capacity, n, WORK_SECONDS)).rate
                achieved[capacity][name].append(rate / ideal)
                say(
                    f"  fig 2 round {round_number + 1}: capacity {capacity:3} {name:10} "
                    f"{rate:6.0f}/s of {ideal:.0f}/s = {rate / ideal:.3f}"
                )
    return {
        capacity: {
            "messages": capacity * EFFICIENCY_BATCHES,
            "rounds": EFFICIENCY_ROUNDS,
            "ideal_per_s": capacity / WORK_SECONDS,
            "in_figure": capacity in EFFICIENCY_FIGURE,
            "worker_efficiency": median(by_name["worker"]),
            "worker_efficiency_quartiles": quartiles(by_name["worker"]),
            "raw_efficiency": median(by_name["raw"]),
            "raw_efficiency_quartiles": quartiles(by_name["raw"]),
            "worker_vs_raw": median(map(ratio, by_name["worker"], by_name["raw"])),
            "prefetch2x_efficiency": median(by_name["prefetch2x"]),
            "samples": by_name,
        }
        for capacity, by_name in achieved.items()
    }

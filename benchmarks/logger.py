"""Figure 4: the Logger's latency, from ``info()`` to ``handle_info``, 1 and 10 subscribers.

One publisher (a Logger that was never started: it only publishes) and ``subscribers`` started
Loggers, each with its own connection, all in this process. Events go one at a time: the next
``info()`` is called once every subscriber has handled the previous one, so the figure is the
latency of an idle bus, not of a queue that has backed up. Each event carries the
``time.perf_counter()`` read just before ``info()``; ``handle_info`` reads the clock again.

For scale, the same is measured with raw aio-pika, pair by pair in the same rounds: a
publisher channel with confirms publishing JSON to the DIRECT exchange, and per subscriber an
exclusive server-named queue bound with ``info``, consumed with ``json.loads`` and ``ack()``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aio_pika

from benchmarks.common import QUICK, percentile, ratio, reference, rotate, unique

EVENTS = 200 if QUICK else 1000
SUBSCRIBER_COUNTS = (1, 10)
ROUNDS = 1 if QUICK else 3
WAIT = 10.0  # seconds an event may take to reach every subscriber


class _Inbox:
    """The latencies seen by all subscribers, and a way to wait for event ``seq`` everywhere."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.latencies: list[float] = []
        self.pending = 0
        self.arrived = asyncio.Event()

    def expect(self) -> None:
        self.pending = self.subscribers
        self.arrived.clear()

    def got(self, data: dict) -> None:
        self.latencies.append(time.perf_counter() - data["t"])
        self.pending -= 1
        if self.pending == 0:
            self.arrived.set()

    async def send(self, publish: Callable, events: int) -> None:
        for seq in range(events):
            self.expect()
            await publish({"seq": seq, "t": time.perf_counter()})
            await asyncio.wait_for(self.arrived.wait(), WAIT)


async def run_logger(url: str, bus: str, subscribers: int, events: int) -> list[float]:
    module = reference("rmq_logger")
    inbox = _Inbox(subscribers)

    class BenchLogger(module.Logger):
        async def handle_info(self, data: dict) -> None:
            inbox.got(data)

    listeners = [BenchLogger(module.LoggerConfig(url, bus)) for _ in range(subscribers)]
    publisher = module.Logger(module.LoggerConfig(url, bus))
    try:
        for listener in listeners:
            await listener.start()
        await publisher.info({"seq": -1, "t": time.perf_counter()})  # connect before timing
        await asyncio.sleep(0.2)
        inbox.latencies.clear()
        await inbox.send(publisher.info, events)
    finally:
        await publisher.stop()
        for listener in listeners:
            await listener.stop()
    return inbox.latencies


async def run_raw(url: str, bus: str, subscribers: int, events: int) -> list[float]:
    inbox = _Inbox(subscribers)
    connections = []
    try:
        for _ in range(subscribers):
            connection = await aio_pika.connect_robust(url)
            connections.append(connection)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=100)
            exchange = await channel.declare_exchange(bus, aio_pika.ExchangeType.DIRECT)
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(exchange, routing_key="info")

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                inbox.got(json.loads(message.body))
                await message.ack()

            await queue.consume(on_message)
        connection = await aio_pika.connect_robust(url)
        connections.append(connection)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(bus, aio_pika.ExchangeType.DIRECT)

        async def publish(data: dict) -> None:
            message = aio_pika.Message(json.dumps(data).encode(), content_type="application/json")
            await exchange.publish(message, routing_key="info", mandatory=False)

        await publish({"seq": -1, "t": time.perf_counter()})
        await asyncio.sleep(0.2)
        inbox.latencies.clear()
        await inbox.send(publish, events)
    finally:
        for connection in connections:
            await connection.close()
    return inbox.latencies


async def _delete_exchange(url: str, name: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()


async def latency(url: str, say: Callable[[str], None] = print) -> dict:
    """Figure 4: p50 and p99 of info() -> handle_info, in milliseconds, Logger and raw."""
    contenders = {"raw": run_raw, "logger": run_logger}
    seen = {n: {name: [] for name in contenders} for n in SUBSCRIBER_COUNTS}
    for round_number in range(ROUNDS):
        for subscribers in SUBSCRIBER_COUNTS:
            for name in rotate(list(contenders), round_number):
                bus = unique("logger")
                try:
                    latencies = await contenders[name](url, bus, subscribers, EVENTS)
                finally:
                    await _delete_exchange(url, bus)
                seen[subscribers][name].extend(latencies)
                say(
                    f"  fig 4 round {round_number + 1}: {subscribers:2} subscriber(s) {name:6} "
                    f"p50 {percentile(latencies, 0.5) * 1e3:6.2f} ms  "
                    f"p99 {percentile(latencies, 0.99) * 1e3:6.2f} ms"
                )
    rows = {}
    for subscribers, by_name in seen.items():
        row: dict = {"events": EVENTS, "rounds": ROUNDS, "subscribers": subscribers}
        for name, latencies in by_name.items():
            row[f"{name}_p50_ms"] = percentile(latencies, 0.5) * 1e3
            row[f"{name}_p99_ms"] = percentile(latencies, 0.99) * 1e3
        row["p50_vs_raw"] = ratio(row["logger_p50_ms"], row["raw_p50_ms"])
        row["p99_vs_raw"] = ratio(row["logger_p99_ms"], row["raw_p99_ms"])
        rows[subscribers] = row
    return rows

"""Where the reference spends more than raw aio-pika: cProfile both, print the difference.

    python -m benchmarks.profile consume [CAPACITY] [MESSAGES]   # figure 1: Worker vs raw
    python -m benchmarks.profile put [MESSAGES]                   # figure 3: put() vs raw

Each contender runs once under ``cProfile`` (stdlib: nothing to install) on the broker the
benchmarks use; the table lists the functions whose own time (``tottime``) differs most between
the two, in microseconds per message. Functions only the reference has show up on top. Profiling
slows Python code several times more than system calls, so read the shares, not the speeds.
This is how the findings in README.md were made; it is not part of ``make bench``.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
from collections.abc import Awaitable, Callable

import aio_pika

from benchmarks import publish, worker
from benchmarks.common import Probe, delete_queues, prefill, task_body, unique
from course.broker import find_broker

Stats = dict[tuple[str, int, str], tuple[int, float]]


async def _profiled(run: Callable[[], Awaitable[object]]) -> Stats:
    profile = cProfile.Profile()
    profile.enable()
    try:
        await run()
    finally:
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {key: (value[1], value[2]) for key, value in stats.items()}


async def consume(url: str, name: str, capacity: int, n: int) -> Stats:
    queue = unique(f"profile.{name}")
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        await prefill(channel, queue, (task_body(i) for i in range(n)))
    finally:
        await connection.close()
    try:
        probe = Probe(n)
        stats = await _profiled(lambda: worker.CONTENDERS[name](url, queue, capacity, probe, 0.0))
        print(f"{name}: {probe.rate:.0f} messages/s under the profiler")
        return stats
    finally:
        await delete_queues(url, [queue])


async def put(url: str, name: str, n: int) -> Stats:
    queue = unique(f"profile.{name}")
    try:
        await publish._purge(url, queue)
        return await _profiled(lambda: publish.CONTENDERS[name](url, queue, n, 1))
    finally:
        await delete_queues(url, [queue])


def _where(key: tuple[str, int, str]) -> str:
    file, line, function = key
    short = "/".join(file.split("/")[-2:]) if "/" in file else file
    return f"{short}:{line} {function}"


def difference(raw: Stats, reference: Stats, n: int, top: int = 15) -> None:
    total_raw = sum(t for _, t in raw.values())
    total_ref = sum(t for _, t in reference.values())
    print(
        f"\nprofiled time per message: raw {total_raw / n * 1e6:.0f} us, "
        f"reference {total_ref / n * 1e6:.0f} us ({total_ref / total_raw - 1:+.1%})"
    )
    rows = sorted(
        (
            (reference.get(key, (0, 0.0))[1] - raw.get(key, (0, 0.0))[1]) / n * 1e6,
            key,
        )
        for key in raw.keys() | reference.keys()
    )
    print(f"\n{'us/message':>10}  function (own time, reference minus raw)")
    for delta, key in reversed(rows[-top:]):
        print(f"{delta:+10.2f}  {_where(key)}")
    print("       ...")
    for delta, key in reversed(rows[:5]):
        print(f"{delta:+10.2f}  {_where(key)}")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "consume"
    broker = find_broker("tests")
    try:
        if what == "consume":
            capacity = int(argv[1]) if len(argv) > 1 else 100
            n = int(argv[2]) if len(argv) > 2 else 20000
            raw = asyncio.run(consume(broker.url, "raw", capacity, n))
            reference = asyncio.run(consume(broker.url, "worker", capacity, n))
        elif what == "put":
            n = int(argv[1]) if len(argv) > 1 else 5000
            raw = asyncio.run(put(broker.url, "raw", n))
            reference = asyncio.run(put(broker.url, "put", n))
        else:
            print(__doc__)
            return 2
    finally:
        broker.stop()
    difference(raw, reference, n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

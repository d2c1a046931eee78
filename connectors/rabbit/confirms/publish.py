"""Lesson "confirms": publish persistent messages four ways, and print how fast each way is.

    python3 connectors/rabbit/confirms/publish.py --way each            # one confirm at a time
    python3 connectors/rabbit/confirms/publish.py --way all             # the four ways, a table
    python3 connectors/rabbit/confirms/publish.py --way all --count 20000

The ways: `none` (no publisher confirms: publish() returns once the message is written to the
socket), `each` (wait for the broker's confirm of every message before the next), `batch`
(publish a batch, then wait for all its confirms), `async` (keep up to --window messages in
flight, and send the next as soon as any is confirmed). The messages go to the durable queue
`confirms`, which is emptied first; afterwards it holds the last run's messages.
"""

import argparse
import asyncio
import time

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import DeliveryError

from connectors.rabbit import lesson

WAYS = {
    "none": "nothing: no confirms",
    "each": "the confirm of each message",
    "batch": "the confirms of each batch",
    "async": "a confirm, with a window in flight",
}

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("--way", choices=[*WAYS, "all"], default="all")
options.add_argument("--count", type=int, default=5000, help="messages per way (default 5000)")
options.add_argument("--batch", type=int, default=100, help="messages per batch (default 100)")
options.add_argument("--window", type=int, default=1000, help="messages in flight (default 1000)")
args = options.parse_args()


async def publish(connection: AbstractConnection, way: str) -> tuple[float, int]:
    """Publish ``args.count`` messages one way; return (seconds, messages the broker refused)."""
    channel = await connection.channel(publisher_confirms=way != "none")
    queue = await channel.declare_queue("confirms", durable=True)
    await queue.purge()
    exchange = channel.default_exchange
    refused = 0

    async def one(number: int) -> None:
        nonlocal refused
        message = Message(f"message {number}".encode(), delivery_mode=DeliveryMode.PERSISTENT)
        try:
            # With confirms on, this returns once the broker has confirmed the message (for a
            # durable queue: written to disk); without, as soon as it is written to the socket.
            await exchange.publish(message, routing_key="confirms")
        except DeliveryError:  # a nack: the broker could not take it
            refused += 1

    began = time.perf_counter()
    if way in ("none", "each"):
        for number in range(args.count):
            await one(number)
    elif way == "batch":
        for start in range(0, args.count, args.batch):
            end = min(start + args.batch, args.count)
            await asyncio.gather(*(one(number) for number in range(start, end)))
    else:  # async: up to `window` unconfirmed messages at any time
        window = asyncio.Semaphore(args.window)

        async def in_window(number: int) -> None:
            async with window:
                await one(number)

        await asyncio.gather(*(in_window(number) for number in range(args.count)))
    seconds = time.perf_counter() - began
    await channel.close()
    return seconds, refused


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        ways = list(WAYS) if args.way == "all" else [args.way]
        results = {way: await publish(connection, way) for way in ways}
    each = results["each"][0] if "each" in results and len(results) > 1 else 0.0
    print(f" {'way':<6} {'publish() waits for':<36} {'messages':>8} {'seconds':>8} {'msg/s':>8}"
          + ("  vs each" if each else ""))  # fmt: skip
    for way, (seconds, refused) in results.items():
        rate = args.count / seconds if seconds else float("inf")
        ratio = f"  {each / seconds:6.1f}x" if each and seconds else ""
        print(f" {way:<6} {WAYS[way]:<36} {args.count:>8} {seconds:>8.2f} {rate:>8.0f}{ratio}")
        if refused:
            print(f"        ({refused} of them refused by the broker: nacked)")


if __name__ == "__main__":
    lesson.run(main())

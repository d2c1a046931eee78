"""Lesson "topics": print the log lines whose routing key matches one of your patterns.

    python3 connectors/rabbit/topics/receiver.py "*.critical"              (Ctrl+C to stop)
    python3 connectors/rabbit/topics/receiver.py "disk.*" "*.critical"     # two bindings
    python3 connectors/rabbit/topics/receiver.py "#"                       # everything

A pattern is words separated by dots, where `*` stands for exactly one word and `#` for zero or
more. Each pattern becomes one binding of this receiver's own (exclusive, server-named) queue
to the topic exchange `topic_logs`.
"""

import argparse
import asyncio

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("patterns", nargs="+", metavar="PATTERN", help='e.g. "*.critical"')
args = options.parse_args()


async def on_message(message: AbstractIncomingMessage) -> None:
    async with message.process():
        print(f" [x] {message.routing_key}: {message.body.decode()!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("topic_logs", ExchangeType.TOPIC)
        queue = await channel.declare_queue(exclusive=True)
        for pattern in args.patterns:
            await queue.bind(logs, routing_key=pattern)
        await queue.consume(on_message)
        shown = ", ".join(repr(pattern) for pattern in args.patterns)
        print(f" [*] Queue {queue.name} is bound with {shown}. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

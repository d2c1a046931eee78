"""Lesson "logs_level": print messages published with routing key `info` or `critical`.

    python3 connectors/rabbit/logs_level/to_stdout.py      (Ctrl+C to stop)

Its queue is bound to the direct exchange `logs_level` twice, once per key.
"""

import asyncio

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson


async def on_message(message: AbstractIncomingMessage) -> None:
    async with message.process():
        print(f" [x] {message.routing_key}: {message.body.decode()!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs_level", ExchangeType.DIRECT)
        queue = await channel.declare_queue(exclusive=True)
        # One queue, two bindings: messages with either key land here.
        await queue.bind(logs, routing_key="info")
        await queue.bind(logs, routing_key="critical")
        await queue.consume(on_message)
        print(f" [*] Queue {queue.name} gets 'info' and 'critical'. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

"""Lesson "logs_level": append messages published with routing key `critical` to logs.txt.

    python3 connectors/rabbit/logs_level/to_file.py      (Ctrl+C to stop)

logs.txt is written in the current directory.
"""

import asyncio

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson


async def on_message(message: AbstractIncomingMessage) -> None:
    async with message.process():
        # "a": append, keep what is already there (ASYNC230: see logs/to_file.py)
        with open("logs.txt", "a") as file:  # noqa: ASYNC230
            file.write(f"{message.routing_key}: {message.body.decode()}\n")
        print(f" [x] Wrote {message.routing_key}: {message.body.decode()!r} to logs.txt")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs_level", ExchangeType.DIRECT)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(logs, routing_key="critical")  # only this key
        await queue.consume(on_message)
        print(f" [*] Queue {queue.name} gets 'critical' only. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

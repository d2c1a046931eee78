"""Lesson "logs": a logger that prints every message published to the fanout exchange `logs`.

    python3 connectors/rabbit/logs/to_stdout.py            # own exclusive queue: gets everything
    python3 connectors/rabbit/logs/to_stdout.py --shared   # the chapter's first try: "logger"

With --shared, every logger reads the same queue "logger", so the loggers split the
messages between them (round robin) instead of each getting a copy.
"""

import asyncio

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = lesson.parser(__doc__)
options.add_argument("--shared", action="store_true", help='read the shared queue "logger"')
args = options.parse_args()


async def on_message(message: AbstractIncomingMessage) -> None:
    async with message.process():
        print(f" [x] {message.body.decode()!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs", ExchangeType.FANOUT)
        if args.shared:
            # One named queue for all loggers: they compete for its messages. auto_delete
            # removes it when the last logger stops, so it does not keep collecting logs.
            # durable=True only because RabbitMQ 4.3 refuses a shared queue that is not.
            queue = await channel.declare_queue("logger", durable=True, auto_delete=True)
        else:
            # No name: the broker makes one up (amq.gen-...). exclusive: only this connection
            # may use it, and it is deleted when the connection closes.
            queue = await channel.declare_queue(exclusive=True)
        await queue.bind(logs)
        await queue.consume(on_message)
        print(f" [*] Queue {queue.name} is bound to exchange 'logs'. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

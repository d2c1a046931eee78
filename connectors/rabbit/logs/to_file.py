"""Lesson "logs": a logger that appends every message from the fanout exchange `logs` to logs.txt.

    python3 connectors/rabbit/logs/to_file.py            # own exclusive queue: gets everything
    python3 connectors/rabbit/logs/to_file.py --shared   # the chapter's first try: "logger"

logs.txt is written in the current directory. With --shared, see to_stdout.py.
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
        # "a" appends. The chapter opened the file with "w", which empties it first: the file
        # only ever held the latest message.
        # (A one-line append is quick, so we do it right here; ruff's ASYNC230 would have
        # slow file work moved off the event loop, e.g. with asyncio.to_thread.)
        with open("logs.txt", "a") as file:  # noqa: ASYNC230
            file.write(message.body.decode() + "\n")
        print(f" [x] Wrote {message.body.decode()!r} to logs.txt")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs", ExchangeType.FANOUT)
        # Both kinds of queue are explained in to_stdout.py.
        if args.shared:
            queue = await channel.declare_queue("logger", durable=True, auto_delete=True)
        else:
            queue = await channel.declare_queue(exclusive=True)
        await queue.bind(logs)
        await queue.consume(on_message)
        print(f" [*] Queue {queue.name} is bound to exchange 'logs'. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

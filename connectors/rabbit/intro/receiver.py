"""Lesson "intro": a receiver that runs until you stop it, printing what reaches `hello`.

    python3 connectors/rabbit/intro/receiver.py      (Ctrl+C to stop)

Start it before or after the sender: messages wait in the queue. Start two of them, and the
broker hands out the messages in turn (round robin).
"""

import asyncio

from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

args = lesson.parser(__doc__).parse_args()


async def on_message(message: AbstractIncomingMessage) -> None:
    print(f" [x] Received {message.body.decode()!r}")
    await asyncio.sleep(args.work)  # stands for asynchronous I/O, e.g. an HTTP call
    print(f" [x] Done with {message.body.decode()!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:  # closes the connection on the way out, even on Ctrl+C
        channel = await connection.channel()
        # durable=True: RabbitMQ 4.3 refuses a shared queue that is not durable (see README.md).
        # Declaring is idempotent: it creates the queue only if it is missing.
        queue = await channel.declare_queue("hello", durable=True)
        # no_ack=True: the broker forgets a message as soon as it hands it over (see the ack lesson)
        await queue.consume(on_message, no_ack=True)
        print(" [*] Waiting for messages. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

"""Lesson "intro", all in one file: a receiver and a sender meet at the queue `hello`.

    python3 connectors/rabbit/intro/intro.py      (Ctrl+C to stop)

The receiver starts listening, the sender puts two messages in the queue and closes its
connection, and the receiver prints them. Each message gets 5 s of pretend work (--work).
"""

import asyncio

from aio_pika import Message
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from connectors.rabbit import lesson

args = lesson.parser(__doc__).parse_args()


async def on_message(message: AbstractIncomingMessage) -> None:
    # A callback does not have to be a coroutine; this one is, so it can await I/O.
    print(f" [x] Received {message.body.decode()!r}")
    await asyncio.sleep(args.work)  # stands for asynchronous I/O, e.g. an HTTP call
    print(f" [x] Done with {message.body.decode()!r}")


async def receiver(connection: AbstractConnection) -> None:
    channel = await connection.channel()  # a light "virtual connection" inside the TCP one
    # durable=True: RabbitMQ 4.3 refuses a shared queue that is not durable (see README.md).
    # Declaring is idempotent: it creates the queue only if it is missing.
    queue = await channel.declare_queue("hello", durable=True)
    # no_ack=True: the broker forgets a message as soon as it hands it over (see the ack lesson)
    await queue.consume(on_message, no_ack=True)


async def sender() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        # The same declaration as the receiver's: a message sent to a missing queue is dropped.
        await channel.declare_queue("hello", durable=True)
        for i in range(2):
            body = f"{i} - Hello World!"
            # The default exchange ("") delivers to the queue named by routing_key.
            await channel.default_exchange.publish(Message(body.encode()), routing_key="hello")
            print(f" [x] Sent {body!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        await receiver(connection)
        await sender()
        print(" [*] Waiting for messages. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

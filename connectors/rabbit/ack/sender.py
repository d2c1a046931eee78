"""Lesson "ack": put one message in the queue `ack`, then exit.

    python3 connectors/rabbit/ack/sender.py                 # sends 'Hello World!'
    python3 connectors/rabbit/ack/sender.py "job 42"        # sends 'job 42'

The message waits in the queue until a receiver takes it and acknowledges it.
"""

import sys

from aio_pika import DeliveryMode, Message

from connectors.rabbit import lesson

text = " ".join(sys.argv[1:]) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        # A work queue: durable, and its messages persistent, so that a broker restart loses
        # neither (see the ack lesson's README). Declaring is idempotent.
        await channel.declare_queue("ack", durable=True)
        message = Message(text.encode(), delivery_mode=DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key="ack")
        print(f" [x] Sent {text!r}")


if __name__ == "__main__":
    lesson.run(main())

"""Lesson "qos": put one message in the queue `ack`, then exit. Run it several times.

    python3 connectors/rabbit/qos/sender.py                # sends 'Hello World!'
    python3 connectors/rabbit/qos/sender.py "task 3"       # sends 'task 3'

Same queue as the ack lesson (as in the chapter): the qos lesson is the same work queue,
with a limit on how many messages one receiver may hold.
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

"""Lesson "qos": put one message in the queue `ack`, then exit. Run it several times.

    python3 connectors/rabbit/qos/sender.py                # sends 'Hello World!'
    python3 connectors/rabbit/qos/sender.py "task 3"       # sends 'task 3'

Same queue as the ack lesson (as in the chapter): the qos lesson is the same work queue,
with a limit on how many messages one receiver may hold.
"""

import sys

from aio_pika import Message

from connectors.rabbit import lesson

text = " ".join(sys.argv[1:]) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("ack")  # idempotent: creates the queue only if it is missing
        await channel.default_exchange.publish(Message(text.encode()), routing_key="ack")
        print(f" [x] Sent {text!r}")


if __name__ == "__main__":
    lesson.run(main())

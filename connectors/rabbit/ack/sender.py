"""Lesson "ack": put one message in the queue `ack`, then exit.

    python3 connectors/rabbit/ack/sender.py                 # sends 'Hello World!'
    python3 connectors/rabbit/ack/sender.py "job 42"        # sends 'job 42'

The message waits in the queue until a receiver takes it and acknowledges it.
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

"""Lesson "intro": put two messages in the queue `hello`, then exit.

    python3 connectors/rabbit/intro/sender.py           # '0 - Hello World!', '1 - Hello World!'
    python3 connectors/rabbit/intro/sender.py again     # '0 - again', '1 - again'

No receiver has to be running: the broker keeps the messages in the queue until one comes.
"""

import sys

from aio_pika import Message

from connectors.rabbit import lesson

text = " ".join(sys.argv[1:]) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:  # closes the connection at the end of the block
        channel = await connection.channel()
        # The same declaration as the receiver's: a message sent to a missing queue is dropped.
        await channel.declare_queue("hello", durable=True)
        for i in range(2):
            body = f"{i} - {text}"
            # The default exchange ("") delivers to the queue named by routing_key.
            await channel.default_exchange.publish(Message(body.encode()), routing_key="hello")
            print(f" [x] Sent {body!r}")


if __name__ == "__main__":
    lesson.run(main())

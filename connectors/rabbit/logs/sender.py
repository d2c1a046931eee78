"""Lesson "logs": publish one log line to the fanout exchange `logs`, then exit.

    python3 connectors/rabbit/logs/sender.py                   # 'Hello World!'
    python3 connectors/rabbit/logs/sender.py "disk is full"    # 'disk is full'

The sender knows nothing about queues: it publishes to the exchange, and the exchange copies
the message into every queue bound to it. With no queue bound, the message is dropped.
"""

import sys

from aio_pika import ExchangeType, Message

from connectors.rabbit import lesson

text = " ".join(sys.argv[1:]) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs", ExchangeType.FANOUT)
        # A fanout exchange ignores the routing key: every bound queue gets a copy. So we pass
        # an empty one; any other value ("logs", "hello") would change nothing.
        await logs.publish(Message(text.encode()), routing_key="")
        print(f" [x] Sent {text!r}")


if __name__ == "__main__":
    lesson.run(main())

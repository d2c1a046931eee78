"""Lesson "logs_level": publish one message to the direct exchange `logs_level`, then exit.

    python3 connectors/rabbit/logs_level/sender.py info          # stdout only
    python3 connectors/rabbit/logs_level/sender.py critical      # stdout and logs.txt
    python3 connectors/rabbit/logs_level/sender.py something     # nowhere: no queue is bound to it
    python3 connectors/rabbit/logs_level/sender.py critical "disk is full"

The routing key (the first argument, default info) is the log level. A direct exchange puts
the message in every queue bound with exactly that key, and drops it if there is none.
"""

import sys

from aio_pika import ExchangeType, Message

from connectors.rabbit import lesson

level = sys.argv[1] if len(sys.argv) > 1 else "info"
text = " ".join(sys.argv[2:]) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        logs = await channel.declare_exchange("logs_level", ExchangeType.DIRECT)
        await logs.publish(Message(text.encode()), routing_key=level)
        print(f" [x] Sent {text!r} with routing key {level!r}")


if __name__ == "__main__":
    lesson.run(main())

"""Lesson "rpc": send a reply nobody asked for to a client's reply queue, then exit.

    python3 connectors/rabbit/rpc/stray.py amq.gen-JzTY20BRgKO-HjmUJj0wLg

The queue name is the one client.py prints (" [*] Replies come to ..."). The reply carries a
correlation_id that no call of that client is waiting for.
"""

import sys

from aio_pika import Message
from aio_pika.exceptions import DeliveryError

from connectors.rabbit import lesson

if len(sys.argv) != 2:
    raise SystemExit(__doc__)
queue = sys.argv[1]


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel(on_return_raises=True)
        reply = Message(b"42", correlation_id="not-a-call-of-yours")
        try:
            await channel.default_exchange.publish(reply, routing_key=queue, mandatory=True)
        except DeliveryError:
            raise SystemExit(f"There is no queue {queue!r}: is client.py still running?") from None
        print(f" [x] Sent the reply '42' with correlation_id 'not-a-call-of-yours' to {queue}")


if __name__ == "__main__":
    lesson.run(main())

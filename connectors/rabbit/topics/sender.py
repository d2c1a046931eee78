"""Lesson "topics": publish one log line to the topic exchange `topic_logs`, then exit.

    python3 connectors/rabbit/topics/sender.py disk.critical                 # 'Hello World!'
    python3 connectors/rabbit/topics/sender.py db.info "slow query"          # 'slow query'
    python3 connectors/rabbit/topics/sender.py nothing.here --mandatory      # told when dropped

The routing key is `<facility>.<severity>`: words separated by dots. The exchange puts the
message into every queue bound with a pattern that matches the key, once per queue, and drops
it when no pattern matches. With --mandatory the broker returns a message it could not route,
so the sender learns that nobody got it.
"""

import argparse

from aio_pika import ExchangeType, Message
from aio_pika.exceptions import DeliveryError

from connectors.rabbit import lesson

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("key", help="the routing key, e.g. disk.critical")
options.add_argument("words", nargs="*", help="the message (default: Hello World!)")
options.add_argument(
    "--mandatory", action="store_true", help="ask the broker to return the message if unroutable"
)
args = options.parse_args()
text = " ".join(args.words) or "Hello World!"


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        # Publisher confirms are on (aio-pika's default), so publish() waits for the broker's
        # answer; on_return_raises turns a returned (unroutable, mandatory) message into an error.
        channel = await connection.channel(on_return_raises=True)
        logs = await channel.declare_exchange("topic_logs", ExchangeType.TOPIC)
        try:
            message = Message(text.encode())
            await logs.publish(message, routing_key=args.key, mandatory=args.mandatory)
        except DeliveryError:
            print(f" [!] Returned {text!r}: no binding matches the routing key {args.key!r}")
            return
        print(f" [x] Sent {text!r} with routing key {args.key!r}")


if __name__ == "__main__":
    lesson.run(main())

"""Lesson "ack", part 2: what is left after the broker restarts.

    python3 connectors/rabbit/ack/durability.py send     # fill the queues
    make broker-restart                                   # restart the broker
    python3 connectors/rabbit/ack/durability.py check    # look at what is left

send: into the durable queue `durable`, one persistent message and one that is not; then into
the transient (non-durable) queue `transient`, one persistent message. RabbitMQ 3.x makes that
queue; RabbitMQ 4.3 refuses it and closes the connection, and the script says so.
check: how many messages each queue holds now, and which. It does not take them away.
"""

import argparse

import aio_pika
from aio_pika import DeliveryMode, Message

from connectors.rabbit import lesson

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("command", choices=["send", "check"])
args = options.parse_args()

QUEUES = {"durable": True, "transient": False}  # name: durable?


async def send() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("durable", durable=True)
        await queue.purge()  # start empty, so that the counts below are easy to read
        for text, mode in [("persistent", DeliveryMode.PERSISTENT),
                           ("not persistent", DeliveryMode.NOT_PERSISTENT)]:  # fmt: skip
            message = Message(text.encode(), delivery_mode=mode)
            await channel.default_exchange.publish(message, routing_key="durable")
            print(f" [x] Sent {text!r} to the durable queue 'durable'")

    # A plain connection, not lesson.connect(): on RabbitMQ 4.3 the broker refuses the queue and
    # closes this connection. Here that is no mistake, it is what we came to see.
    connection = await aio_pika.connect(lesson.rabbitmq_url(), timeout=10)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue("transient", durable=False)
        except aio_pika.exceptions.AMQPError as error:
            print(f" [!] Refused: {lesson.refusal(error)}")
            return
        await queue.purge()
        message = Message(b"persistent", delivery_mode=DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key="transient")
        print(" [x] Sent 'persistent' to the transient queue 'transient'")


async def check() -> None:
    connection = await lesson.connect()
    async with connection:
        for name in QUEUES:
            channel = await connection.channel()
            try:
                # passive=True: only look. Without it, check would create a missing queue.
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                print(f" [x] Queue {name!r}: there is no such queue")
                continue
            texts = []  # get() without ack: the broker takes them back when we close
            while message := await queue.get(fail=False):
                texts.append(message.body.decode())
            print(f" [x] Queue {name!r}: {len(texts)} message(s) {texts}")


if __name__ == "__main__":
    lesson.run(send() if args.command == "send" else check())

"""Lesson "cluster": send numbered tasks to the quorum queue `tasks`, with publisher confirms.

    python3 connectors/rabbit/cluster/publisher.py              # task 1 ... task 1000, 50 a second
    python3 connectors/rabbit/cluster/publisher.py 200 --rate 20
    python3 connectors/rabbit/cluster/publisher.py --classic    # to the classic queue instead

` [x] Confirmed task N` is printed once the broker has confirmed task N: a quorum queue
confirms a message once a majority of its members have written it to disk. If the node this
publisher is connected to dies, it connects to the next node and sends again the task whose
confirm it was waiting for. So every confirmed task is in the queue, and one may be there twice.
"""

import argparse
import asyncio

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractConnection

from connectors.rabbit import lesson
from connectors.rabbit.cluster import nodes

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("count", type=int, nargs="?", default=1000, help="tasks to send (1000)")
options.add_argument("--rate", type=float, default=50, help="tasks per second (default: 50)")
options.add_argument(
    "--classic", action="store_true", help="use the classic queue `tasks.classic` (one node)"
)
args = options.parse_args()

QUEUE, ARGUMENTS = ("tasks.classic", {}) if args.classic else ("tasks", {"x-queue-type": "quorum"})


number = 1  # the next task to send; it stays the same until the broker has confirmed it


async def send(connection: AbstractConnection) -> None:
    """Send the tasks from `number` on through one connection, each confirmed before the next."""
    global number
    channel = await connection.channel()  # publisher confirms are on by default
    await channel.declare_queue(QUEUE, durable=True, arguments=ARGUMENTS)
    while number <= args.count:
        task = Message(f"task {number}".encode(), delivery_mode=DeliveryMode.PERSISTENT)
        try:  # returns once the broker has confirmed the task
            await channel.default_exchange.publish(task, routing_key=QUEUE, timeout=10)
        except aio_pika.exceptions.DeliveryError:  # a nack: the queue did not take the task
            print(
                f" [!] Task {number} refused (nack), e.g. while the queue elects a new leader; "
                "sending it again on a new channel"
            )
            await asyncio.sleep(0.2)
            await channel.close()  # a new channel asks again which node leads the queue
            channel = await connection.channel()
            continue
        print(f" [x] Confirmed task {number}")
        number += 1
        await asyncio.sleep(1 / args.rate)


async def main() -> None:
    node = 0
    while number <= args.count:
        connection, node = await nodes.connect(node)
        try:
            async with connection:
                await send(connection)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:  # 406: no use retrying
            raise SystemExit(f"The broker refused to declare {QUEUE!r}: {error}") from None
        except nodes.LOST as error:
            print(
                f" [!] {nodes.name(node)}: {nodes.why(error)}; no confirm for task {number}, "
                "sending it again through the next node"
            )
            node += 1
    print(f" [*] All {args.count} tasks confirmed")


if __name__ == "__main__":
    lesson.run(main())

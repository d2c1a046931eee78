"""Lesson "cluster": a worker of capacity N on the quorum queue `tasks`, through node failures.

    python3 connectors/rabbit/cluster/worker.py                  # up to 10 tasks at once
    python3 connectors/rabbit/cluster/worker.py --capacity 3 --work 1
    python3 connectors/rabbit/cluster/worker.py --classic        # from the classic queue instead

` [x] Done task N` is printed when the work on task N is finished, just before the ack. If the
worker's node dies, the worker connects to the next node and consumes again. The broker then
delivers again every task whose ack it did not get: the unfinished ones, and any whose ack was
lost with the node. Those are done twice; their `x-delivery-count` header shows it.
"""

import asyncio
import os

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from connectors.rabbit import lesson
from connectors.rabbit.cluster import nodes

options = lesson.parser(__doc__)
options.add_argument(
    "--capacity", type=int, default=10, metavar="N", help="tasks at once: the prefetch count (10)"
)
options.add_argument(
    "--classic", action="store_true", help="use the classic queue `tasks.classic` (one node)"
)
if not os.environ.get("LESSON_WORK_SECONDS"):
    options.set_defaults(work=0.1)  # this lesson's tasks are short: there are a thousand
args = options.parse_args()

# A quorum queue has a copy on every node, and is durable by definition. A classic queue lives
# on one node: durable=True keeps it, and its persistent messages, across a restart of that node.
QUEUE, ARGUMENTS = ("tasks.classic", {}) if args.classic else ("tasks", {"x-queue-type": "quorum"})


async def on_message(message: AbstractIncomingMessage) -> None:
    task = message.body.decode()
    await asyncio.sleep(args.work)  # stands for real work
    count = (message.headers or {}).get("x-delivery-count")
    print(f" [x] Done {task}" + (f" (again: x-delivery-count {count})" if count else ""))
    try:
        await message.ack()
    except nodes.LOST as error:  # the channel died with its node: the broker will resend the task
        print(f" [!] Could not ack {task} ({nodes.why(error)}); it will come again")


async def consume(connection: AbstractConnection) -> str:
    """Consume through one connection until it is gone; return why it went."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=args.capacity)
    queue = await channel.declare_queue(QUEUE, durable=True, arguments=ARGUMENTS)
    await queue.consume(on_message)
    print(f" [*] Waiting for tasks from {QUEUE!r} (capacity {args.capacity}). To exit press CTRL+C")
    return await nodes.lost(connection)


async def main() -> None:
    node = 0
    while True:
        connection, node = await nodes.connect(node)  # node, node + 1, ... until one answers
        try:
            async with connection:
                reason = await consume(connection)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:  # 406: no use retrying
            raise SystemExit(f"The broker refused to declare {QUEUE!r}: {error}") from None
        except nodes.LOST as error:  # a call failed because the node went away
            reason = nodes.why(error)
        print(f" [!] {nodes.name(node)}: {reason}; trying the next node")
        node += 1


if __name__ == "__main__":
    lesson.run(main())

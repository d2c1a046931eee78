"""Lesson "cluster": a poison message on a quorum queue, and the delivery limit that stops it.

    python3 connectors/rabbit/cluster/poison.py              # x-delivery-limit 3
    python3 connectors/rabbit/cluster/poison.py --limit 0    # no limit of our own
    python3 connectors/rabbit/cluster/poison.py --limit -1   # 4.x: no limit at all

Puts one task that no handler can process in the quorum queue `poison`, then consumes it. Each
try fails and rejects the task with requeue=True, so the broker delivers it again and counts the
failures in its `x-delivery-count` header. Once the count passes `x-delivery-limit`, the broker
dead-letters the task (to the queue `poison.dead`, through the dead-letter exchange) instead.
The script declares `poison` afresh on each run, so that --limit applies.
"""

import asyncio
import os

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson
from connectors.rabbit.cluster import nodes

QUEUE, DEAD = "poison", "poison.dead"

options = lesson.parser(__doc__)
options.add_argument(
    "--limit", type=int, default=3, metavar="N", help="x-delivery-limit; 0: none set (3)"
)
options.add_argument(
    "--give-up", type=int, default=30, metavar="N", help="deliveries before the script stops (30)"
)
if not os.environ.get("LESSON_WORK_SECONDS"):
    options.set_defaults(work=0.1)
args = options.parse_args()

deliveries = 0
finished = asyncio.Event()


async def on_task(message: AbstractIncomingMessage) -> None:
    global deliveries
    deliveries += 1
    count = (message.headers or {}).get("x-delivery-count", 0)
    print(f" [x] Delivery {deliveries} (x-delivery-count: {count}): the handler failed")
    await asyncio.sleep(args.work)
    if deliveries >= args.give_up:
        print(
            f" [!] Still coming back after {deliveries} deliveries: nothing limits this loop. "
            "Acking the task to end it."
        )
        await message.ack()
        finished.set()
        return
    # reject, not nack: RabbitMQ 4.3 counts a reject as a failed delivery, and a nack not.
    await message.reject(requeue=True)


async def on_dead(message: AbstractIncomingMessage) -> None:
    death = (message.headers or {}).get("x-death") or [{}]
    reason = death[0].get("reason", "?")  # type: ignore[union-attr]
    print(
        f" [x] Dead-lettered to {DEAD!r} after {deliveries} deliveries "
        f"(x-death reason: {reason}): {message.body.decode()!r}"
    )
    await message.ack()
    finished.set()


async def main() -> None:
    connection, _node = await nodes.connect()
    async with connection:
        channel = await connection.channel()
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",  # the default exchange, which routes by queue name,
            "x-dead-letter-routing-key": DEAD,  # so dead letters go to the queue `poison.dead`
        }
        if args.limit:
            arguments["x-delivery-limit"] = args.limit
        await channel.queue_delete(QUEUE)  # a queue's arguments are fixed once it exists
        queue = await channel.declare_queue(QUEUE, durable=True, arguments=arguments)
        dead = await channel.declare_queue(DEAD, durable=True)
        await dead.purge()  # dead letters of earlier runs
        limit = f"x-delivery-limit {args.limit}" if args.limit else "no x-delivery-limit"
        print(f" [*] Declared the quorum queue {QUEUE!r} ({limit}; dead letters go to {DEAD!r})")

        body = b"a task no handler can process"
        task = Message(body, delivery_mode=DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(task, routing_key=QUEUE)
        print(f" [x] Sent {body.decode()!r}")
        await queue.consume(on_task)
        await dead.consume(on_dead)
        await finished.wait()


if __name__ == "__main__":
    lesson.run(main())

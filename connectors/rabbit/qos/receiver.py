"""Lesson "qos": a receiver that takes at most `prefetch_count` messages at a time.

    python3 connectors/rabbit/qos/receiver.py                 # prefetch_count=1, 5 s per message
    python3 connectors/rabbit/qos/receiver.py --prefetch 3    # up to 3 handlers run at once

Each "Received" line shows how many handlers are running at that moment: never more than
prefetch_count. Messages the receiver may not take yet stay in the queue for other receivers.
"""

import asyncio

from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = lesson.parser(__doc__)
options.add_argument(
    "--prefetch", type=int, default=1, metavar="N", help="prefetch_count (default: 1)"
)
args = options.parse_args()

running = 0  # handlers busy right now


async def on_message(message: AbstractIncomingMessage) -> None:
    global running
    text = message.body.decode()
    # process() acks when the block ends normally. If the block raises, it rejects the message
    # without requeueing it (so a message that always fails cannot loop forever).
    async with message.process():
        running += 1
        print(f" [x] Received {text!r} (running: {running} of {args.prefetch})")
        try:
            await asyncio.sleep(args.work)  # stands for real work
        finally:
            running -= 1
    print(f" [x] Done with {text!r}")


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        # At most this many unacknowledged messages per consumer on this channel: the broker
        # sends the next one only after an ack. Without set_qos there is no limit, and a busy
        # receiver hoards.
        await channel.set_qos(prefetch_count=args.prefetch)
        queue = await channel.declare_queue("ack", durable=True)  # the ack lesson's queue
        await queue.consume(on_message)
        print(f" [*] Waiting for messages (prefetch_count={args.prefetch}). To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

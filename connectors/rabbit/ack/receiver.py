"""Lesson "ack": a receiver that acknowledges each message only after its work is done.

    python3 connectors/rabbit/ack/receiver.py             # ack after 5 s of work
    python3 connectors/rabbit/ack/receiver.py --no-ack    # the intro's way: nothing to ack

Kill it in the middle of the work: RabbitMQ gives the unacknowledged message to the next
receiver, marked as redelivered. With --no-ack the broker forgot the message as soon as it
delivered it, so it is gone.
"""

import asyncio

from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = lesson.parser(__doc__)
options.add_argument("--no-ack", action="store_true", help="consume with no_ack=True (lossy)")
args = options.parse_args()


async def on_message(message: AbstractIncomingMessage) -> None:
    text = message.body.decode()
    print(f" [x] Received {text!r} (redelivered: {message.redelivered})")
    print(f" [.] Working for {args.work:g} s ...")
    await asyncio.sleep(args.work)  # stands for real work, e.g. a slow HTTP call
    if not args.no_ack:
        # `await` matters: ack() is a coroutine. Without await it never reaches the broker,
        # and the message comes back (redelivered) as soon as this receiver disconnects.
        await message.ack()
    print(f" [x] Done with {text!r}" + ("" if args.no_ack else ", acknowledged"))


async def main() -> None:
    connection = await lesson.connect()
    async with connection:  # closes the connection on the way out, even on Ctrl+C
        channel = await connection.channel()
        queue = await channel.declare_queue("ack", durable=True)  # survives a broker restart
        # no_ack=False is the default; it is spelled out here because it is the lesson.
        await queue.consume(on_message, no_ack=args.no_ack)
        print(" [*] Waiting for messages. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

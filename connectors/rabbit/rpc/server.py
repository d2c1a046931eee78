"""Lesson "rpc": a server that answers fib(n) requests from the queue `rpc_queue`.

    python3 connectors/rabbit/rpc/server.py               (Ctrl+C to stop)
    python3 connectors/rabbit/rpc/server.py --work 3      # each answer takes 3 s more
    python3 connectors/rabbit/rpc/server.py --name B      # to tell two servers apart

A request's body is a number n; the answer, fib(n), goes to the queue named in the request's
reply_to, with the request's correlation_id, so that the client can tell which question it
answers. The request is acknowledged only once the answer is sent.
"""

import asyncio
import os

from aio_pika import Message
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = lesson.parser(__doc__)
options.set_defaults(work=float(os.environ.get("LESSON_WORK_SECONDS") or 0))
options.add_argument("--name", default="", help="a name to print in front of each line")
args = options.parse_args()
me = f"{args.name}: " if args.name else ""


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def answer(text: str) -> str:
    if not text.isdigit() or int(text) > 1000:
        return f"error: {text!r} is not a whole number from 0 to 1000"
    return str(fib(int(text)))


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)  # one request at a time; the rest wait for others
        queue = await channel.declare_queue("rpc_queue", durable=True)

        async def on_request(message: AbstractIncomingMessage) -> None:
            async with message.process():  # ack when the block ends: after the reply is sent
                text = message.body.decode()
                print(
                    f" [.] {me}fib({text}) asked by {message.reply_to}, "
                    f"correlation_id {message.correlation_id}"
                )
                await asyncio.sleep(args.work)  # stands for real work
                reply = Message(answer(text).encode(), correlation_id=message.correlation_id)
                await channel.default_exchange.publish(reply, routing_key=message.reply_to or "")
                print(f" [x] {me}Replied {answer(text)}")

        await queue.consume(on_request)
        print(f" [*] {me}Waiting for requests in rpc_queue. To exit press CTRL+C")
        await asyncio.Future()  # wait forever: Ctrl+C or SIGTERM ends it


if __name__ == "__main__":
    lesson.run(main())

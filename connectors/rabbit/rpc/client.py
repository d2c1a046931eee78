"""Lesson "rpc": ask the server for fib(n) and wait for the answer, but not for ever.

    python3 connectors/rabbit/rpc/client.py 10                   # fib(10) = 55
    python3 connectors/rabbit/rpc/client.py 1 2 3 4 --together   # four calls at once
    python3 connectors/rabbit/rpc/client.py 10 --timeout 2       # give up after 2 s
    python3 connectors/rabbit/rpc/client.py 10 --linger 5        # listen 5 s longer at the end
    python3 connectors/rabbit/rpc/client.py 10 --direct          # direct reply-to: no queue

Each call publishes n to the queue `rpc_queue` with reply_to (where to answer) and a new
correlation_id (which call this is), then waits for the reply with that id. Replies come to one
exclusive queue of this client's own, or, with --direct, to RabbitMQ's direct reply-to. Exits
with code 1 when a call got no answer in time.
"""

import argparse
import asyncio
import uuid

from aio_pika import Message
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson

options = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
options.add_argument("numbers", nargs="+", metavar="N", help="ask for fib(N)")
options.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
options.add_argument("--together", action="store_true", help="make all the calls at once")
options.add_argument("--linger", type=float, default=0.0, help="seconds to listen at the end")
options.add_argument("--direct", action="store_true", help="use direct reply-to")
args = options.parse_args()


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        if args.direct:  # a pseudo-queue: consumed with no_ack, on the channel that publishes
            replies = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        else:  # a queue of our own: no name, exclusive, gone when we disconnect
            replies = await channel.declare_queue(exclusive=True)
        waiting: dict[str, asyncio.Future[str]] = {}  # correlation_id -> the call waiting for it

        async def on_reply(message: AbstractIncomingMessage) -> None:
            call = waiting.pop(message.correlation_id or "", None)
            if call is None:  # not a KeyError: late, or not ours, it is no reason to crash
                print(
                    f" [?] Ignored a reply nobody waits for: {message.body.decode()!r} "
                    f"(correlation_id {message.correlation_id})"
                )
                return
            call.set_result(message.body.decode())

        await replies.consume(on_reply, no_ack=True)
        print(f" [*] Replies come to {replies.name}")

        async def call(n: str) -> bool:
            correlation_id = uuid.uuid4().hex
            waiting[correlation_id] = asyncio.get_running_loop().create_future()
            request = Message(
                n.encode(),
                reply_to=replies.name,
                correlation_id=correlation_id,
                expiration=args.timeout,  # not taken by a server in time: the broker drops it
            )
            await channel.default_exchange.publish(request, routing_key="rpc_queue")
            print(f" [>] Asked for fib({n}), correlation_id {correlation_id}")
            try:
                result = await asyncio.wait_for(waiting[correlation_id], args.timeout)
            except TimeoutError:
                del waiting[correlation_id]  # a reply that comes later is ignored
                print(f" [!] fib({n}): no reply within {args.timeout:g} s")
                return False
            print(f" [.] fib({n}) = {result}")
            return True

        if args.together:
            answered = await asyncio.gather(*(call(n) for n in args.numbers))
        else:
            answered = [await call(n) for n in args.numbers]
        await asyncio.sleep(args.linger)
    if not all(answered):
        raise SystemExit(1)


if __name__ == "__main__":
    lesson.run(main())

"""Task 3, check by hand: an RPC server with the method int_sum, on the queue `rpc_metaclass`.

    python3 run_rpc_server.py           # Ctrl+C (or SIGTERM) stops it

Call it from another terminal with run_rpc_client.py. Every call that reaches int_sum is
printed here; a call with an argument of the wrong type never does: the server answers it with
an error before calling the method. The broker is RABBITMQ_URL (default
amqp://guest:guest@localhost:5672/).
"""

import asyncio
import logging
import sys

import aio_pika

from connectors.rabbit import lesson
from connectors.rabbit.task.rmq_rpc import RpcServer, RpcServerConfig
from course.refusals import explain

QUEUE = "rpc_metaclass"


def int_sum(a: int, b: int) -> int:
    print(f" [.] int_sum(a={a!r}, b={b!r})", flush=True)
    return a + b


async def main() -> None:
    server = RpcServer(RpcServerConfig(rabbit_url=lesson.rabbitmq_url(), queue_name=QUEUE))
    server.method(int_sum)  # the same as writing @server.method above `def int_sum`
    try:
        await server.start()
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        if explain(error) is None:  # no broker answers there
            raise lesson.no_broker(error) from None
        raise SystemExit(lesson.refusal(error)) from None  # it answered, and refused something
    print(f" [*] Serving int_sum on the queue {QUEUE}. To stop press CTRL+C", flush=True)

    await lesson.stop_requested()

    await server.stop()
    print(" [*] Stopped.", flush=True)


if __name__ == "__main__":
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main())
    except NotImplementedError:
        sys.exit("RpcServer is not written yet: see Task 3 in connectors/rabbit/task/README.md")
    except KeyboardInterrupt:  # Ctrl+C before the server was listening for it
        print(" [*] Stopped.")

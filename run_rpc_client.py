"""Task 3, check by hand: call int_sum on run_rpc_server.py, once right and once wrong.

    python3 run_rpc_client.py

It prints the result of int_sum(a=5, b=18), 23, then the error the server sends back for
int_sum(a=5, b="b"): b must be an int. The broker is RABBITMQ_URL (default
amqp://guest:guest@localhost:5672/).
"""

import asyncio
import logging
import sys

import aio_pika

from connectors.rabbit import lesson
from connectors.rabbit.task.rmq_rpc import RpcClient, RpcClientConfig, RpcError
from course.refusals import explain

QUEUE = "rpc_metaclass"  # the queue of run_rpc_server.py


async def main() -> None:
    config = RpcClientConfig(rabbit_url=lesson.rabbitmq_url(), queue_name=QUEUE, timeout=5.0)
    try:
        async with RpcClient(config) as client:
            result = await client.call("int_sum", a=5, b=18)
            print(f" [x] int_sum(a=5, b=18) = {result}", flush=True)
            try:
                await client.call("int_sum", a=5, b="b")
            except RpcError as error:
                print(f" [!] int_sum(a=5, b='b') failed on the server: {error}", flush=True)
    except TimeoutError as error:
        raise SystemExit(f" [!] {error}\nIs run_rpc_server.py running? Start it first.") from None
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        if explain(error) is None:  # no broker answers there
            raise lesson.no_broker(error) from None
        raise SystemExit(lesson.refusal(error)) from None  # it answered, and refused something


if __name__ == "__main__":
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main())
    except NotImplementedError:
        sys.exit("RpcClient is not written yet: see Task 3 in connectors/rabbit/task/README.md")

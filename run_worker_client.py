"""Task 1, check by hand: put one job, {"type": "event"}, into the queue `worker_metaclass`.

    python3 run_worker_client.py

Then `make queues` (or the management UI, http://localhost:15672, guest/guest, tab Queues)
shows one more ready message in the durable queue worker_metaclass. run_worker.py handles it.
The broker is RABBITMQ_URL (default amqp://guest:guest@localhost:5672/).
"""

import asyncio
import logging
import sys

import aio_pika

from connectors.rabbit import lesson
from connectors.rabbit.task.rmq_worker import WorkerClient, WorkerClientConfig
from course.refusals import explain


async def main() -> None:
    url = lesson.rabbitmq_url()
    config = WorkerClientConfig(rabbit_url=url, queue_name="worker_metaclass")
    try:
        async with WorkerClient(config) as client:
            await client.put({"type": "event"})
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        if explain(error) is None:  # no broker answers there
            raise lesson.no_broker(error) from None
        raise SystemExit(lesson.refusal(error)) from None  # it answered, and refused something
    print(" [x] Put {'type': 'event'} into the queue worker_metaclass", flush=True)


if __name__ == "__main__":
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main())
    except NotImplementedError:
        sys.exit("WorkerClient is not written yet: see Task 1 in connectors/rabbit/task/README.md")

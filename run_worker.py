"""Task 1, check by hand: a worker that handles the jobs in the queue `worker_metaclass`.

    python3 run_worker.py               # Ctrl+C (or SIGTERM) stops it

It runs at most 2 jobs at a time (capacity=2); each takes WORK_SECONDS seconds (default 5),
then the job is printed. Put jobs in with run_worker_client.py. The queue is durable, so jobs
wait there across a broker restart. The broker is RABBITMQ_URL (default
amqp://guest:guest@localhost:5672/).
"""

import asyncio
import logging
import os
import sys

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit import lesson
from connectors.rabbit.task.rmq_worker import Worker, WorkerConfig
from course.refusals import explain

WORK_SECONDS = float(os.environ.get("WORK_SECONDS") or 5)


class MetaclassWorker(Worker):
    async def handler(self, msg: AbstractIncomingMessage) -> None:
        await asyncio.sleep(WORK_SECONDS)
        print(msg.body.decode(), flush=True)


async def main() -> None:
    url = lesson.rabbitmq_url()
    worker = MetaclassWorker(
        WorkerConfig(rabbit_url=url, queue_name="worker_metaclass", capacity=2)
    )
    try:
        await worker.start()
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        if explain(error) is None:  # no broker answers there
            raise lesson.no_broker(error) from None
        raise SystemExit(lesson.refusal(error)) from None  # it answered, and refused something
    print(" [*] Waiting for jobs in the queue worker_metaclass. To stop press CTRL+C", flush=True)

    await lesson.stop_requested()

    print(" [*] Stopping: running jobs may finish first...", flush=True)
    await worker.stop()
    print(" [*] Stopped.", flush=True)


if __name__ == "__main__":
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main())
    except NotImplementedError:
        sys.exit("Worker is not written yet: see Task 1 in connectors/rabbit/task/README.md")
    except KeyboardInterrupt:  # Ctrl+C before the worker was listening for it
        print(" [*] Stopped.")

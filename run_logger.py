"""Task 2, check by hand: a logger that prints every event on the bus `logger_metaclass`.

    python3 run_logger.py               # Ctrl+C (or SIGTERM) stops it

Send it events from another terminal with run_logger_client.py: each one is printed here, e.g.
{'info': True}. Start several: every one of them prints every event. The broker is
RABBITMQ_URL (default amqp://guest:guest@localhost:5672/).
"""

import asyncio
import contextlib
import logging
import sys

import aio_pika

from connectors.rabbit import lesson
from connectors.rabbit.task.rmq_logger import Logger, LoggerConfig
from course.refusals import explain


class MetaclassLogger(Logger):
    def __init__(self, url: str) -> None:
        # name is the exchange: the bus that events are sent to
        super().__init__(LoggerConfig(rabbit_url=url, name="logger_metaclass"))

    async def handle_info(self, data: dict) -> None:
        print(data, flush=True)

    async def handle_critical(self, data: dict) -> None:
        print(data, flush=True)


async def main() -> None:
    url = lesson.rabbitmq_url()
    logger = MetaclassLogger(url)
    try:
        await logger.start()
    except OSError as error:  # no broker answers there (ConnectionError, TimeoutError, ...)
        raise lesson.no_broker(error) from None
    except aio_pika.exceptions.AMQPError as error:  # the broker refused a declaration
        with contextlib.suppress(Exception):
            await logger.stop()
        raise SystemExit(explain(error) or f"RabbitMQ refused: {error}") from None
    print(" [*] Waiting for events on the bus logger_metaclass. To stop press CTRL+C", flush=True)

    await lesson.stop_requested()

    await logger.stop()
    print(" [*] Stopped.", flush=True)


if __name__ == "__main__":
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main())
    except NotImplementedError:
        sys.exit("Logger is not written yet: see Task 2 in connectors/rabbit/task/README.md")
    except KeyboardInterrupt:  # Ctrl+C before the logger was listening for it
        print(" [*] Stopped.")

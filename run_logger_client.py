"""Task 2, check by hand: send one event to the bus `logger_metaclass`.

    python3 run_logger_client.py            # the info event {'info': True}
    python3 run_logger_client.py critical   # the critical event {'critical': True}

Every run_logger.py that is running prints it. In the management UI (http://localhost:15672,
guest/guest) the tab Exchanges shows logger_metaclass, and the tab Queues the temporary queue
of each running logger, bound to it. The broker is RABBITMQ_URL (default
amqp://guest:guest@localhost:5672/).
"""

import argparse
import asyncio
import logging
import sys

import aio_pika

from connectors.rabbit import lesson
from course.refusals import explain
from run_logger import MetaclassLogger


async def main(level: str) -> None:
    url = lesson.rabbitmq_url()
    event = {level: True}
    try:
        async with MetaclassLogger(url) as logger:  # not started: it only publishes
            if level == "critical":
                await logger.critical(event)
            else:
                await logger.info(event)
    except OSError as error:  # no broker answers there (ConnectionError, TimeoutError, ...)
        raise lesson.no_broker(error) from None
    except aio_pika.exceptions.AMQPError as error:  # the broker refused the bus or the event
        raise SystemExit(explain(error) or f"RabbitMQ refused: {error}") from None
    # info() returns once the broker has the event (it confirmed it).
    print(f" [x] Sent {event} with the routing key {level!r}", flush=True)


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("level", nargs="?", default="info", choices=("info", "critical"))
    level = options.parse_args().level
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # main() explains failures
    try:
        asyncio.run(main(level))
    except NotImplementedError:
        sys.exit("Logger is not written yet: see Task 2 in connectors/rabbit/task/README.md")

"""Task 2: a pub/sub Logger on RabbitMQ. The task text is in README.md, next to this file.

Loggers share an event bus: a DIRECT exchange named ``LoggerConfig.name``. Every started logger
hears every event on its bus, one at a time and in the order they were published, and the
routing key (``info`` or ``critical``) says which handler gets it. Anyone can publish, started
or not:

    class MyLogger(Logger):
        async def handle_info(self, data: dict) -> None:
            print(data)

        async def handle_critical(self, data: dict) -> None:
            print(data)

    logger = MyLogger(LoggerConfig(rabbit_url=url, name="logger_metaclass"))
    await logger.start()                  # from now on it hears the bus
    await logger.info({"info": True})     # -> handle_info({"info": True}) in every started logger
    await logger.stop()

You write start, stop, _handler, info and critical (Steps 1 to 4). The rest is given. Add
helper methods and imports as you like; keep the names and signatures that are here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)


@dataclass
class LoggerConfig:
    rabbit_url: str = field(repr=False)  # it holds the password: keep it out of printouts
    name: str  # the exchange, i.e. the bus that events go to


class Logger:
    def __init__(self, config: LoggerConfig) -> None:
        self.config = config
        # Set these up in start(), or in info()/critical() for a logger that only publishes.
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None

    async def start(self) -> None:
        """Step 1: join the bus and start hearing it; return once consuming has begun.

        Connect, declare the exchange (DIRECT, named ``self.config.name``) and a temporary queue
        of this logger's own: no name and ``exclusive=True``, so that it is this logger's alone
        and goes with its connection. Bind it with the routing keys ``"info"`` and
        ``"critical"``, set ``prefetch_count=1`` (so the handlers get the events one at a time,
        in order) and consume it with ``self._handler``. Do not wait for events here: return.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        """Step 2: close the connection to RabbitMQ (its temporary queue goes with it).

        Safe to call when nothing was started, and twice.
        """
        raise NotImplementedError

    async def _handler(self, message: AbstractIncomingMessage) -> None:
        """Step 3: the queue's consumer: decode the event and call the handler of its level.

        The level is ``message.routing_key``: ``"info"`` goes to ``handle_info``, ``"critical"``
        to ``handle_critical``. The body is JSON; pass the decoded dict. Acknowledge the message
        once the handler is done (``async with message.process():`` does it for you): the broker
        keeps an unacknowledged event for as long as the logger lives.
        """
        raise NotImplementedError

    async def info(self, data: dict) -> None:
        """Step 4: publish data to the bus as JSON, with the routing key "info".

        It must work without start(): connect and declare the exchange first if that is not
        done yet (but create no queue: a logger that only publishes hears nothing). Keep that
        connection for every later event, and return only once the broker has the event:
        ``await`` the publish (aio-pika's channels have the broker confirm each one).
        """
        raise NotImplementedError

    async def critical(self, data: dict) -> None:
        """Step 4: publish data to the bus as JSON, with the routing key "critical".

        Like info().
        """
        raise NotImplementedError

    async def handle_info(self, data: dict) -> None:
        """Called with every ``info`` event on the bus (a dict). Override it in a subclass."""

    async def handle_critical(self, data: dict) -> None:
        """Called with every ``critical`` event on the bus (a dict). Override it in a subclass."""

    async def __aenter__(self) -> Self:
        """``async with MyLogger(...) as logger:`` (this does not start it)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the logger."""
        await self.stop()

"""Task 3: a typed RPC server and its client on RabbitMQ. The task text is in README.md, next to
this file ("Task 3").

A server serves functions by name; a client calls them and waits for the answer:

    server = RpcServer(RpcServerConfig(rabbit_url=url, queue_name="rpc_metaclass"))

    @server.method
    def int_sum(a: int, b: int) -> int:
        return a + b

    await server.start()  # returns at once; calls are served in the background
    async with RpcClient(RpcClientConfig(rabbit_url=url, queue_name="rpc_metaclass")) as client:
        await client.call("int_sum", a=5, b=18)  # 23
        await client.call("int_sum", a=5, b="b")  # raises RpcError: TypeError: ... 'b' ... int
    await server.stop()

On the wire, JSON both ways (never pickle), through the default exchange:

* request: routing key ``queue_name``; properties ``reply_to`` and ``correlation_id``; body
  ``{"method": "int_sum", "args": {"a": 5, "b": 18}}``
* reply: routing key = the request's ``reply_to``; the request's ``correlation_id``; body
  ``{"result": 23}`` or ``{"error": {"type": "TypeError", "message": "..."}}``

You write register, start, _on_request, _check_args and stop of the server, and start, call,
_on_reply and stop of the client. The rest is given. Add helper methods and imports as you like;
keep the names and signatures that are here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage


@dataclass
class RpcServerConfig:
    rabbit_url: str = field(repr=False)  # it holds the password: keep it out of printouts
    queue_name: str  # the request queue, shared by every server of this service
    capacity: int = 1  # at most this many calls run at the same time


@dataclass
class RpcClientConfig:
    rabbit_url: str = field(repr=False)  # it holds the password: keep it out of printouts
    queue_name: str  # the servers' request queue
    timeout: float = 5.0  # seconds call() waits for a reply before it raises TimeoutError


class RpcError(Exception):
    """A call failed on the server. ``type`` is the remote exception's class name (for example
    ``"TypeError"``), ``message`` its text."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


class RpcServer:
    def __init__(self, config: RpcServerConfig) -> None:
        self.config = config
        self.methods: dict[str, Callable[..., Any]] = {}  # name -> function, filled by register()
        self.connection: AbstractConnection | None = None  # start() opens it

    def method(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``@server.method`` registers ``func`` under its own name."""
        self.register(func.__name__, func)
        return func

    def register(self, name: str, func: Callable[..., Any]) -> None:
        """Step 1: serve func (a function or a coroutine function) as the method called name."""
        raise NotImplementedError

    async def start(self) -> None:
        """Step 2: connect, declare the request queue (durable) and consume it; return at once.

        Consume it with ``self._on_request``. Do not wait for calls here. Step 6 adds the
        capacity limit here too.
        """
        raise NotImplementedError

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        """Step 3: run the requested method and publish its reply; then ack the request.

        start() registers this method as the queue's consumer: it runs once per request. Steps 4
        and 5: a bad call and a method that raises are answered with an error reply.
        """
        raise NotImplementedError

    def _check_args(self, name: str, args: dict[str, Any]) -> None:
        """Step 4: raise TypeError, naming the argument and its type, when args do not fit the
        method: a missing or unknown argument, or a value of the wrong type."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Step 7: close the connection to RabbitMQ. Safe when nothing was started, and twice.

        Step 8 [*]: first stop taking requests, and let the calls in flight finish and reply.
        """
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """``async with RpcServer(config) as server:`` starts the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the server."""
        await self.stop()


class RpcClient:
    def __init__(self, config: RpcClientConfig) -> None:
        self.config = config
        self.connection: AbstractConnection | None = None  # start() opens it
        self.futures: dict[str, asyncio.Future[Any]] = {}  # correlation id -> the waiting call

    async def start(self) -> None:
        """Client step 1: connect, and consume a reply queue of this client's own.

        The reply queue has no name and is exclusive; consume it with ``self._on_reply``.
        Client step 6 [*]: use direct reply-to instead (no reply queue at all).
        """
        raise NotImplementedError

    async def call(self, method: str, /, **args: Any) -> Any:
        """Client step 2: send a request, wait for its reply, return the result.

        An error reply raises RpcError. Client step 4: no reply within ``config.timeout``
        seconds raises TimeoutError, naming the method and the time waited.
        """
        raise NotImplementedError

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        """Client step 3: hand the reply to the call waiting for its correlation id.

        A reply that no call waits for (late, or an unknown id) is logged and ignored.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        """Client step 5: close the connection. Safe when nothing was started, and twice."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """``async with RpcClient(config) as client:`` starts the client."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the client."""
        await self.stop()

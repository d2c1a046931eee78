"""A plain, correct RPC server and client, written the way a student would: the base of most rpc
mistakes.

It is the stub filled in as the task text hints, starred steps included: one ``connect_robust``
connection each; the server sets ``prefetch_count=capacity``, checks the arguments with
``inspect.signature`` and ``typing.get_type_hints``, and answers inside ``message.process()``, so
a request is acked once its reply is out; the client uses direct reply-to and a dict of futures
keyed by correlation id. The mistakes in ``course.mistakes.rpc`` are small edits of this file,
so keep the lines they edit.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

log = logging.getLogger(__name__)


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


def fits(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # JSON true is not a number, although Python says it is an int
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


class RpcServer:
    def __init__(self, config: RpcServerConfig) -> None:
        self.config = config
        self.methods: dict[str, Callable[..., Any]] = {}  # name -> function, filled by register()
        self.connection: AbstractConnection | None = None  # start() opens it
        self.running: set[asyncio.Task[Any]] = set()

    def method(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``@server.method`` registers ``func`` under its own name."""
        self.register(func.__name__, func)
        return func

    def register(self, name: str, func: Callable[..., Any]) -> None:
        """Step 1: serve func (a function or a coroutine function) as the method called name."""
        self.methods[name] = func

    async def start(self) -> None:
        """Step 2: connect, declare the request queue (durable) and consume it; return at once."""
        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.config.capacity)
        self.queue = await self.channel.declare_queue(self.config.queue_name, durable=True)
        self.consumer_tag = await self.queue.consume(self._on_request)

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        """Step 3: run the requested method and publish its reply; then ack the request."""
        task = asyncio.current_task()
        self.running.add(task)
        try:
            async with message.process():
                request = json.loads(message.body)
                try:
                    reply = {"result": await self._run(request["method"], request["args"])}
                except Exception as error:
                    reply = {"error": {"type": type(error).__name__, "message": str(error)}}
                await self.channel.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps(reply).encode(),
                        correlation_id=message.correlation_id,
                    ),
                    routing_key=message.reply_to,
                )
        finally:
            self.running.discard(task)

    async def _run(self, name: str, args: dict[str, Any]) -> Any:
        self._check_args(name, args)
        result = self.methods[name](**args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _check_args(self, name: str, args: dict[str, Any]) -> None:
        """Step 4: raise TypeError, naming the argument and its type, when args do not fit the
        method: a missing or unknown argument, or a value of the wrong type."""
        if name not in self.methods:
            raise LookupError(f"no method {name!r}")
        func = self.methods[name]
        parameters = inspect.signature(func).parameters
        hints = typing.get_type_hints(func)
        for key, value in args.items():
            if key not in parameters:
                raise TypeError(f"{name}() got an unexpected argument {key!r}")
            kind = hints.get(key)
            if kind is not None and not fits(value, kind):
                raise TypeError(
                    f"{name}(): argument {key!r} must be {kind.__name__}, "
                    f"got {type(value).__name__}"
                )
        for key, parameter in parameters.items():
            if key not in args and parameter.default is parameter.empty:
                raise TypeError(f"{name}() is missing the argument {key!r}")

    async def stop(self) -> None:
        """Step 7: close the connection to RabbitMQ. Safe when nothing was started, and twice."""
        if self.connection is None:
            return
        await self.queue.cancel(self.consumer_tag)  # Step 8: no new calls ...
        if self.running:
            await asyncio.wait(self.running)  # ... and the running ones finish
        await self.connection.close()
        self.connection = None

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
        """Client step 1: connect, and consume a reply queue of this client's own."""
        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)
        self.channel = await self.connection.channel()
        queue = await self.channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await queue.consume(self._on_reply, no_ack=True)
        self.reply_to = queue.name

    async def call(self, method: str, /, **args: Any) -> Any:
        """Client step 2: send a request, wait for its reply, return the result."""
        correlation_id = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        self.futures[correlation_id] = future
        message = aio_pika.Message(
            json.dumps({"method": method, "args": args}).encode(),
            correlation_id=correlation_id,
            reply_to=self.reply_to,
            expiration=self.config.timeout,
        )
        try:
            await self.channel.default_exchange.publish(message, routing_key=self.config.queue_name)
            reply = await asyncio.wait_for(future, self.config.timeout)
        except TimeoutError:
            raise TimeoutError(f"{method}: no reply within {self.config.timeout:g} s") from None
        finally:
            del self.futures[correlation_id]
        if "error" in reply:
            raise RpcError(reply["error"]["type"], reply["error"]["message"])
        return reply["result"]

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        """Client step 3: hand the reply to the call waiting for its correlation id."""
        future = self.futures.get(message.correlation_id)
        if future is None or future.done():
            log.warning("Ignored a reply nobody waits for: %r", message.correlation_id)
            return
        future.set_result(json.loads(message.body))

    async def stop(self) -> None:
        """Client step 5: close the connection. Safe when nothing was started, and twice."""
        if self.connection is not None:
            await self.connection.close()  # the client's
            self.connection = None

    async def __aenter__(self) -> Self:
        """``async with RpcClient(config) as client:`` starts the client."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block stops the client."""
        await self.stop()

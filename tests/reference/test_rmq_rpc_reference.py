"""The reference RPC server and client's own promises (solutions/.../rmq_rpc.py), with real faults.

The graded suite checks what the task asks of every solution. These tests check what the
reference promises beyond it: richer type hints checked, methods that cannot be served refused
at registration, malformed requests answered or dropped without harm, results that are not JSON
reported, both sides back after the network drops them (cut cleanly or half-open), calls that
outlive the grace period handed to another server, a missing broker reported fast, passwords
never shown. Faults are real: a TCP proxy cuts, stalls or refuses connections; malformed
requests are published raw to the broker.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from course import impl
from course.broker.common import wait_for_direct_reply_to
from course.checks import eventually

pytestmark = pytest.mark.timeout(60)

ref = impl.load(impl.REFERENCE_DIR, "rmq_rpc")


def int_sum(a: int, b: int) -> int:
    return a + b


def total(values: list[int], weights: dict[str, float] | None = None) -> float:
    weights = weights or {}
    return sum(values) * weights.get("all", 1.0)


def maybe(n: int | None = None) -> str:
    return "none" if n is None else f"n={n}"


def anything(value: Any, **extra: Any) -> dict:
    return {"value": value, "extra": extra}


def not_json() -> object:
    return {1, 2}  # a set: json.dumps refuses it


@pytest.fixture(scope="module", autouse=True)
def direct_reply_to_works(rabbitmq_url: str) -> None:
    """The reference client uses direct reply-to; a 4.0 node that has just started may lose
    the first reply (312 NO_ROUTE): wait for a round trip that works."""
    wait_for_direct_reply_to(rabbitmq_url)


@pytest.fixture
async def made(proxy) -> AsyncIterator[list[Any]]:
    things: list[Any] = []
    yield things
    for thing in things:
        await asyncio.wait_for(thing.stop(), 10)


@pytest.fixture
def server(proxy, made) -> Callable[..., Any]:
    def make(queue: str, url: str | None = None, **options: Any) -> Any:
        started = ref.RpcServer(
            ref.RpcServerConfig(rabbit_url=url or proxy.url, queue_name=queue, **options)
        )
        for func in (int_sum, total, maybe, anything, not_json):
            started.register(func.__name__, func)
        made.append(started)
        return started

    return make


@pytest.fixture
def client(proxy, made) -> Callable[..., Any]:
    def make(queue: str, url: str | None = None, **options: Any) -> Any:
        options.setdefault("timeout", 3.0)
        started = ref.RpcClient(
            ref.RpcClientConfig(rabbit_url=url or proxy.url, queue_name=queue, **options)
        )
        made.append(started)
        return started

    return make


async def raw_call(amqp, queue: str, body: bytes, reply_to: bool = True) -> dict | None:
    """Publish ``body`` as a request with plain aio-pika; the decoded reply, or None (2 s)."""
    channel = await amqp.channel()
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    replies = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.set_result(message.body)

    await replies.consume(keep, no_ack=True)
    properties = {"reply_to": "amq.rabbitmq.reply-to"} if reply_to else {}
    message = aio_pika.Message(body, correlation_id=uuid.uuid4().hex, **properties)
    await channel.default_exchange.publish(message, routing_key=queue)
    try:
        return json.loads(await asyncio.wait_for(got, 2))
    except TimeoutError:
        return None
    finally:
        await channel.close()


# --------------------------------------------------------------------------- registration


def test_methods_that_cannot_be_served_are_refused_when_registered() -> None:
    server = ref.RpcServer(ref.RpcServerConfig(rabbit_url="amqp://u:p@h/", queue_name="q"))
    server.register("int_sum", int_sum)
    with pytest.raises(ValueError, match="registered already"):
        server.register("int_sum", int_sum)

    def positional(a: int, /) -> int:
        return a

    with pytest.raises(TypeError, match="positional-only"):
        server.register("positional", positional)

    def when(at: datetime.datetime) -> str:
        return at.isoformat()

    with pytest.raises(TypeError, match="no JSON value can be"):
        server.register("when", when)
    with pytest.raises(TypeError, match="not callable"):
        server.register("number", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        ref.RpcServerConfig(rabbit_url="amqp://u:p@h/", queue_name="q", capacity=0)
    with pytest.raises(ValueError, match="timeout"):
        ref.RpcClientConfig(rabbit_url="amqp://u:p@h/", queue_name="q", timeout=0)


def test_passwords_stay_out_of_reprs() -> None:
    url = "amqp://user:s3cret@broker.example:5672/prod"
    server = ref.RpcServer(ref.RpcServerConfig(rabbit_url=url, queue_name="q"))
    client = ref.RpcClient(ref.RpcClientConfig(rabbit_url=url, queue_name="q"))
    for thing in (server, client, server.config, client.config):
        assert "s3cret" not in repr(thing), repr(thing)
    assert "user:****@broker.example" in repr(server)


# --------------------------------------------------------------------------- calls


async def test_richer_hints_are_checked_and_name_the_argument(names, server, client) -> None:
    queue = names.queue()
    await server(queue).start()
    caller = client(queue)
    await caller.start()
    assert await caller.call("total", values=[1, 2, 3], weights={"all": 0.5}) == 3.0
    assert await caller.call("total", values=[]) == 0
    assert await caller.call("maybe") == "none"
    assert await caller.call("maybe", n=None) == "none"
    assert await caller.call("maybe", n=3) == "n=3"
    assert await caller.call("anything", value={"x": [1]}, more=True) == {
        "value": {"x": [1]},
        "extra": {"more": True},
    }
    for args, words in (
        ({"values": [1, "2"]}, ["'values'", "list[int]"]),
        ({"values": [1], "weights": {"all": "x"}}, ["'weights'", "dict[str, float]"]),
        ({"values": [True]}, ["'values'", "list[int]"]),
    ):
        with pytest.raises(ref.RpcError) as raised:
            await caller.call("total", **args)
        assert raised.value.type == "TypeError"
        assert all(word in raised.value.message for word in words), raised.value.message
    with pytest.raises(ref.RpcError, match=r"'n' must be int \| None"):
        await caller.call("maybe", n="3")


async def test_a_result_that_is_not_json_is_an_error_and_the_server_carries_on(
    names, server, client
) -> None:
    queue = names.queue()
    await server(queue).start()
    caller = client(queue)
    await caller.start()
    with pytest.raises(ref.RpcError) as raised:
        await caller.call("not_json")
    assert raised.value.type == "TypeError" and "JSON" in raised.value.message
    assert await caller.call("int_sum", a=1, b=2) == 3


async def test_malformed_requests_are_answered_or_dropped_and_the_server_carries_on(
    names, amqp, server, caplog
) -> None:
    caplog.set_level(logging.INFO, logger=ref.__name__)
    queue = names.queue()
    await server(queue).start()
    for body, kind in (
        (b"not json", "ValueError"),
        (b"\xff\xfe", "ValueError"),
        (b"[1, 2]", "ValueError"),
        (b'{"method": 7}', "ValueError"),
        (b'{"method": "int_sum", "args": [5, 18]}', "TypeError"),
    ):
        reply = await raw_call(amqp, queue, body)
        assert reply is not None and reply["error"]["type"] == kind, (body, reply)
    assert await raw_call(amqp, queue, b'{"method": "int_sum", "args": {}}', reply_to=False) is None
    assert any("without reply_to" in record.getMessage() for record in caplog.records)
    reply = await raw_call(amqp, queue, b'{"method": "int_sum", "args": {"a": 5, "b": 18}}')
    assert reply == {"result": 23}
    channel = await amqp.channel()
    declared = await channel.declare_queue(queue, durable=True)
    assert declared.declaration_result.message_count == 0  # nothing was requeued in a loop


async def test_a_call_stalled_in_the_network_times_out_on_time(names, server, client, proxy):
    queue = names.queue()
    await server(queue, url=None).start()
    caller = client(queue, timeout=0.5)
    await caller.start()
    assert await caller.call("int_sum", a=1, b=1) == 2
    proxy.pause()  # nothing crosses: not the request, not its confirm, not the reply
    try:
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"int_sum: no reply within 0\.5 s"):
            await caller.call("int_sum", a=1, b=1)
        assert time.monotonic() - began < 2.0
    finally:
        proxy.resume()


async def test_stop_fails_the_waiting_calls_at_once(names, amqp, client) -> None:
    queue = names.queue()
    channel = await amqp.channel()
    await channel.declare_queue(queue, durable=True)  # no server consumes it
    caller = client(queue, timeout=30)
    await caller.start()
    waiting = asyncio.ensure_future(caller.call("int_sum", a=1, b=2))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    await caller.stop()
    with pytest.raises(ConnectionError, match="stopped"):
        await waiting
    assert time.monotonic() - began < 2


async def test_call_before_start_says_what_to_do(names, client) -> None:
    with pytest.raises(RuntimeError, match="call start"):
        await client(names.queue()).call("int_sum", a=1, b=2)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("half_open", [False, True], ids=["cut", "half-open"])
async def test_both_sides_come_back_after_the_network_drops_them(
    names, server, client, proxy, half_open
) -> None:
    queue = names.queue()
    await server(queue).start()
    caller = client(queue, timeout=1.0)
    await caller.start()
    assert await caller.call("int_sum", a=1, b=1) == 2
    proxy.cut(half_open=half_open)  # the server's and the client's connections, both

    async def answers_again() -> bool:
        try:
            return await caller.call("int_sum", a=2, b=2) == 4
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
            return False

    await eventually(
        answers_again,
        timeout=30,
        interval=0.2,
        message="the client and the server did not work together again after the cut",
    )


async def test_a_call_that_outlives_the_grace_period_goes_to_another_server(
    names, rabbitmq_url, client, made
) -> None:
    queue = names.queue()
    gate = asyncio.Event()
    ran = {"stuck": 0}

    async def stuck(n: int) -> str:
        ran["stuck"] += 1
        if ran["stuck"] == 1:
            await gate.wait()  # never set: this first call outlives any grace period
        return "second"

    first = ref.RpcServer(
        ref.RpcServerConfig(rabbit_url=rabbitmq_url, queue_name=queue, grace_period=0.3)
    )
    first.register("stuck", stuck)
    made.append(first)
    await first.start()
    caller = client(queue, url=rabbitmq_url, timeout=10)
    await caller.start()
    pending = asyncio.ensure_future(caller.call("stuck", n=1))
    await eventually(lambda: ran["stuck"] == 1, timeout=5, message="the call never started")
    began = time.monotonic()
    await first.stop()
    assert time.monotonic() - began < 3, "stop() waited longer than its grace period"
    second = ref.RpcServer(ref.RpcServerConfig(rabbit_url=rabbitmq_url, queue_name=queue))
    second.register("stuck", stuck)
    made.append(second)
    await second.start()
    assert await asyncio.wait_for(pending, 8) == "second"


async def test_no_broker_fails_fast_with_a_masked_url() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"amqp://guest:s3cret@127.0.0.1:{port}/"
    for thing in (
        ref.RpcServer(ref.RpcServerConfig(rabbit_url=url, queue_name="q", connect_timeout=2)),
        ref.RpcClient(ref.RpcClientConfig(rabbit_url=url, queue_name="q", connect_timeout=2)),
    ):
        began = time.monotonic()
        with pytest.raises(ConnectionError) as raised:
            await thing.start()
        assert time.monotonic() - began < 5
        assert "s3cret" not in str(raised.value) and "****" in str(raised.value)

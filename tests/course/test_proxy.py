"""The fault-injection proxy: it sees connections as the broker does, and breaks them on demand."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

from course.checks import eventually
from course.proxy import (
    BASIC_CONSUME,
    BASIC_CONSUME_OK,
    CHANNEL_OPEN,
    QUEUE_BIND_OK,
    QUEUE_DECLARE,
)


async def test_proxy_counts_open_connections_as_they_open_and_close(proxy) -> None:
    assert proxy.open_connections == 0
    connection = await aio_pika.connect(proxy.url, timeout=5)
    assert await proxy.wait_open(1)
    await connection.close()
    assert await proxy.wait_open(0), "a closed client connection must disappear from the count"


async def test_cut_breaks_the_connection_on_both_sides(proxy) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    lost = asyncio.Event()
    connection.close_callbacks.add(lambda *_: lost.set())
    proxy.cut()
    await asyncio.wait_for(lost.wait(), 5)
    assert proxy.open_connections == 0


async def test_refuse_makes_an_outage_until_accept(proxy) -> None:
    proxy.refuse()
    with pytest.raises((ConnectionError, aio_pika.exceptions.AMQPError, OSError, TimeoutError)):
        await aio_pika.connect(proxy.url, timeout=2)
    proxy.accept()
    connection = await aio_pika.connect(proxy.url, timeout=5)
    await connection.close()


async def test_a_robust_client_comes_back_after_a_cut(proxy, names) -> None:
    connection = await aio_pika.connect_robust(proxy.url, timeout=5, reconnect_interval=0.2)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue(), durable=True)
        restored = asyncio.Event()  # set once the connection and its channels are back
        connection.reconnect_callbacks.add(lambda *_: restored.set())
        proxy.cut()
        await asyncio.wait_for(restored.wait(), 15)
        assert proxy.open_connections == 1 and proxy.connections_seen == 2
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        await message.ack()


async def test_a_half_open_cut_keeps_the_broker_side_open_and_silent(proxy, rabbitmq_url) -> None:
    """The client loses its connection; the broker still holds it, and its exclusive queue."""
    connection = await aio_pika.connect(proxy.url, timeout=5)
    lost = asyncio.Event()
    connection.close_callbacks.add(lambda *_: lost.set())
    channel = await connection.channel()
    queue = await channel.declare_queue("", exclusive=True)
    proxy.cut(half_open=True)
    await asyncio.wait_for(lost.wait(), 5)
    assert proxy.open_connections == 0 and proxy.held_connections == 1

    observer = await aio_pika.connect(rabbitmq_url, timeout=5)
    async with observer:
        probe = await observer.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource):
            # Still there, and still locked to the old connection: the broker holds it.
            await probe.declare_queue(queue.name, passive=True)
        proxy.release_held()

        async def gone() -> bool:
            check = await observer.channel()
            try:
                await check.declare_queue(queue.name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return True
            await check.close()
            return False

        await eventually(gone, timeout=5, message="the exclusive queue outlived the healed cut")


async def test_pause_holds_a_confirmed_publish_until_resume(proxy, names) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    async with connection:
        channel = await connection.channel()  # publisher confirms are on by default
        queue = await channel.declare_queue(names.queue(), durable=True)
        proxy.pause()
        publish = asyncio.ensure_future(
            channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        )
        done, _ = await asyncio.wait({publish}, timeout=0.5)
        assert not done, "a confirmed publish returned while no byte could cross"
        proxy.resume()
        await asyncio.wait_for(publish, 5)


async def test_it_counts_publishes_and_which_the_broker_confirmed(proxy, names) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    async with connection:
        confirming = await connection.channel()  # publisher confirms: aio-pika's default
        queue = await confirming.declare_queue(names.queue(), durable=True)
        for number in range(3):
            await confirming.default_exchange.publish(aio_pika.Message(b"%d" % number), queue.name)
            assert proxy.unconfirmed == 0, "an awaited confirmed publish is confirmed on return"
        careless = await connection.channel(publisher_confirms=False)
        await careless.default_exchange.publish(aio_pika.Message(b"x"), queue.name)
        await careless.default_exchange.publish(aio_pika.Message(b"y"), queue.name)
        # Unconfirmed publishes return before their bytes are even sent: wait for them.
        await eventually(lambda: proxy.publishes == 5, timeout=5, message="5 publishes expected")
        await confirming.close()
        again = await connection.channel()  # may reuse a channel number: counting starts anew
        await again.default_exchange.publish(aio_pika.Message(b"z"), queue.name)
        assert proxy.publishes == 6
        assert proxy.unconfirmed == 2, "publishes without confirms are never confirmed"


async def test_it_counts_the_channels_opened_and_those_still_open(proxy) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    async with connection:
        assert proxy.channels_opened == 0, "connecting opens no channel"
        first, second, third = [await connection.channel() for _ in range(3)]
        assert proxy.channels_opened == 3 and proxy.open_channels == 3
        await second.close()  # closed by the client: the broker's close-ok crosses the proxy
        assert proxy.channels_opened == 3 and proxy.open_channels == 2
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            # Closed by the broker (404): the client's close-ok crosses it.
            await third.declare_queue("no-such-queue-for-the-proxy-test", passive=True)
        await eventually(
            lambda: proxy.open_channels == 1,
            timeout=5,
            message=f"a channel the broker closed still counts as open ({proxy.open_channels})",
        )
        await connection.channel()  # may reuse a closed channel's number
        assert proxy.channels_opened == 4 and proxy.open_channels == 2
        assert not first.is_closed
    await proxy.wait_open(0)
    assert proxy.open_channels == 0, "the channels of a closed connection are gone with it"
    assert proxy.channels_opened == 4


async def test_it_reads_the_flags_of_every_queue_declare(proxy, names) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    async with connection:
        channel = await connection.channel()
        own = await channel.declare_queue("", exclusive=True)
        shared = await channel.declare_queue(names.queue(), durable=True)
        await channel.declare_queue(shared.name, passive=True)
        await channel.declare_queue("", auto_delete=True, exclusive=True)
    declared = proxy.queues_declared
    assert [(q.name, q.passive, q.durable, q.exclusive, q.auto_delete) for q in declared] == [
        ("", False, False, True, False),
        (shared.name, False, True, False, False),
        (shared.name, True, False, False, False),
        ("", False, False, True, True),
    ]
    assert own.name.startswith("amq.gen-"), "the broker named the queue declared with no name"


async def test_it_counts_the_methods_each_side_sent(proxy) -> None:
    connection = await aio_pika.connect(proxy.url, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        await queue.bind("amq.direct", "one")
        await queue.bind("amq.direct", "two")
        assert proxy.from_broker[QUEUE_BIND_OK] == 2
        assert proxy.from_broker[BASIC_CONSUME_OK] == 0

        async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass

        await queue.consume(ignore, no_ack=True)
        assert proxy.from_broker[BASIC_CONSUME_OK] == 1, "consume() returns once it is started"
        assert proxy.from_client[BASIC_CONSUME] == 1
        assert proxy.from_client[CHANNEL_OPEN] == 1 and proxy.from_client[QUEUE_DECLARE] == 1

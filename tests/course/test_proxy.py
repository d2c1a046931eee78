"""The fault-injection proxy: it sees connections as the broker does, and breaks them on demand."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest


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
        queue = await channel.declare_queue(names.queue())
        restored = asyncio.Event()  # set once the connection and its channels are back
        connection.reconnect_callbacks.add(lambda *_: restored.set())
        proxy.cut()
        await asyncio.wait_for(restored.wait(), 15)
        assert proxy.open_connections == 1 and proxy.connections_seen == 2
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        await message.ack()

"""A small TCP proxy that sits between code under test and the broker.

Tests hand the code under test ``proxy.url`` instead of the broker's URL. The proxy then sees
every AMQP connection the code opens, exactly as the broker does (a TCP stream that is open or
closed), and can break them on purpose:

* ``proxy.open_connections`` / ``await proxy.wait_open(n)``: how many connections are open;
* ``proxy.cut()``: drop every open connection at once, as a network failure would;
* ``proxy.refuse()`` / ``proxy.accept()``: an outage; new connections are dropped until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from yarl import URL


class TcpProxy:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = URL(broker_url)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing = False
        self.connections_seen = 0
        self.port = 0

    @property
    def url(self) -> str:
        """The broker URL (credentials, vhost and all) rewritten to go through the proxy."""
        return str(self.broker_url.with_host("127.0.0.1").with_port(self.port))

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def wait_open(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until exactly ``count`` connections are open; False if that never happens."""
        deadline = time.monotonic() + timeout
        while self.open_connections != count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def cut(self) -> None:
        """Abort every open connection in both directions (the broker sees a dead peer)."""
        for client, upstream in tuple(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    def refuse(self) -> None:
        """Start an outage: cut what is open and drop new connections until :meth:`accept`."""
        self._refusing = True
        self.cut()

    def accept(self) -> None:
        """End the outage."""
        self._refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.broker_url.host, self.broker_url.port or 5672
            )
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            # When either side hangs up, close the other: the proxy never keeps a half.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pairs.discard(pair)
            for pump in pumps:
                pump.cancel()
            for side in pair:
                side.close()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

"""A small TCP proxy that sits between code under test and the broker.

Tests hand the code under test ``proxy.url`` instead of the broker's URL. The proxy then sees
every AMQP connection the code opens, exactly as the broker does (a TCP stream that is open or
closed), and can break them on purpose:

* ``proxy.open_connections`` / ``await proxy.wait_open(n)``: how many connections are open;
* ``proxy.cut()``: drop every open connection at once, on both sides, as when a process dies;
* ``proxy.cut(half_open=True)``: a network partition: the client's side dies, the broker's side
  stays open and silent (the broker holds the connection, its exclusive queues and unacked
  messages until its heartbeat timeout, or until the proxy closes);
* ``proxy.refuse()`` / ``proxy.accept()``: an outage; new connections are dropped until it ends;
* ``proxy.pause()`` / ``proxy.resume()``: a stall; connections stay open but no byte crosses
  until it ends (so a publish that waits for the broker's confirm cannot return meanwhile);
* ``proxy.publishes`` / ``proxy.unconfirmed``: the proxy reads the AMQP frames that pass, and
  counts every ``basic.publish`` the client sent and those the broker has not confirmed yet
  (publisher confirms). A call that waits for its confirm has, once it returns, nothing
  unconfirmed left: the confirm had to cross the proxy before the client could see it.
* ``proxy.channels_opened`` / ``proxy.open_channels``: the ``channel.open`` frames the clients
  sent, on every connection so far, and the channels open now (opened, not closed since, on
  connections still open): code that opens a channel per call shows up here.
* ``proxy.queues_declared``: every ``queue.declare`` the clients sent, with its flags
  (passive, durable, exclusive, auto-delete), as the broker received it.
* ``proxy.from_client`` / ``proxy.from_broker``: how many of each AMQP method crossed, e.g.
  ``proxy.from_broker[BASIC_CONSUME_OK]``: the consumers the broker has started so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from yarl import URL

# AMQP 0-9-1 methods the proxy follows, as (class id, method id).
CHANNEL_OPEN, CHANNEL_CLOSE_OK, CONFIRM_SELECT = (20, 10), (20, 41), (85, 10)
QUEUE_DECLARE, QUEUE_BIND_OK = (50, 10), (50, 21)
BASIC_CONSUME, BASIC_CONSUME_OK, BASIC_DELIVER = (60, 20), (60, 21), (60, 60)
BASIC_PUBLISH, BASIC_ACK, BASIC_NACK = (60, 40), (60, 80), (60, 120)


class Frames:
    """Reads AMQP 0-9-1 method frames off one direction of a connection, as the bytes pass."""

    def __init__(self, from_client: bool) -> None:
        self.buffer = bytearray()
        self.header = from_client  # a client starts with the 8-byte protocol header "AMQP...."

    def feed(self, data: bytes) -> list[tuple[int, tuple[int, int], bytes]]:
        """The method frames completed by ``data``: (channel, (class, method), arguments)."""
        self.buffer += data
        if self.header:
            if len(self.buffer) < 8:
                return []
            del self.buffer[:8]
            self.header = False
        methods = []
        while len(self.buffer) >= 7:
            size = int.from_bytes(self.buffer[3:7], "big")
            if len(self.buffer) < 8 + size:
                break
            kind, channel = self.buffer[0], int.from_bytes(self.buffer[1:3], "big")
            payload = bytes(self.buffer[7 : 7 + size])
            del self.buffer[: 8 + size]
            if kind == 1 and size >= 4:
                method = (int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big"))
                methods.append((channel, method, payload[4:]))
        return methods


class Confirms:
    """One connection's publishes, channel by channel, and which the broker has confirmed."""

    def __init__(self) -> None:
        self.published: defaultdict[int, int] = defaultdict(int)  # channel -> publishes
        self.upto: defaultdict[int, int] = defaultdict(int)  # channel -> confirmed, all <= tag
        self.singles: defaultdict[int, set[int]] = defaultdict(set)  # channel -> tags confirmed
        self.total = 0
        self.settled_before = 0  # confirmed publishes of channels since reopened

    def from_client(self, channel: int, method: tuple[int, int]) -> None:
        if method == CHANNEL_OPEN:  # a channel number used again: its counting starts anew
            self.settled_before += self._confirmed(channel)
            self.published[channel] = self.upto[channel] = 0
            self.singles[channel].clear()
        elif method == BASIC_PUBLISH:
            self.published[channel] += 1
            self.total += 1

    def from_broker(self, channel: int, method: tuple[int, int], arguments: bytes) -> None:
        if method in (BASIC_ACK, BASIC_NACK) and len(arguments) >= 9:
            tag, multiple = int.from_bytes(arguments[0:8], "big"), arguments[8] & 1
            if multiple:
                self.upto[channel] = max(self.upto[channel], tag)
            else:
                self.singles[channel].add(tag)

    def _confirmed(self, channel: int) -> int:
        upto = min(self.upto[channel], self.published[channel])
        return upto + sum(
            1 for tag in self.singles[channel] if upto < tag <= self.published[channel]
        )

    @property
    def unconfirmed(self) -> int:
        confirmed = self.settled_before + sum(self._confirmed(ch) for ch in self.published)
        return self.total - confirmed


@dataclass(frozen=True)
class QueueDeclared:
    """A ``queue.declare`` a client sent: the name it asked for ("" = the broker names it)."""

    name: str
    passive: bool
    durable: bool
    exclusive: bool
    auto_delete: bool

    @classmethod
    def read(cls, arguments: bytes) -> QueueDeclared | None:
        """From the method's arguments: reserved short, queue shortstr, flag bits, table."""
        if len(arguments) < 3:
            return None
        size = arguments[2]
        if len(arguments) < 4 + size:
            return None
        name, bits = arguments[3 : 3 + size].decode(errors="replace"), arguments[3 + size]
        return cls(name, bool(bits & 1), bool(bits & 2), bool(bits & 4), bool(bits & 8))


class Channels:
    """One connection's channels: how many the client opened, and which are open now.

    A channel closes with ``channel.close-ok``, sent by the side that did not ask for the close
    (the broker when the client closes it, the client when the broker closes it on an error).
    """

    def __init__(self) -> None:
        self.opened = 0
        self.open: set[int] = set()
        self.connected = True  # False once the connection is gone, and its channels with it

    def seen(self, channel: int, method: tuple[int, int], from_client: bool) -> None:
        if method == CHANNEL_OPEN and from_client:
            self.opened += 1
            self.open.add(channel)
        elif method == CHANNEL_CLOSE_OK:
            self.open.discard(channel)


class TcpProxy:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = URL(broker_url)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.StreamWriter] = set()  # broker sides kept open by a half cut
        self._refusing = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._confirms: list[Confirms] = []  # one per connection seen
        self._channels: list[Channels] = []  # one per connection seen
        self.queues_declared: list[QueueDeclared] = []  # every queue.declare, in order
        self.from_client: Counter[tuple[int, int]] = Counter()  # methods, on all connections
        self.from_broker: Counter[tuple[int, int]] = Counter()
        self.connections_seen = 0
        self.port = 0

    @property
    def url(self) -> str:
        """The broker URL (credentials, vhost and all) rewritten to go through the proxy."""
        return str(self.broker_url.with_host("127.0.0.1").with_port(self.port))

    @property
    def open_connections(self) -> int:
        """Connections open end to end, as the client sees them."""
        return len(self._pairs)

    @property
    def publishes(self) -> int:
        """``basic.publish`` frames the clients sent, on every connection so far."""
        return sum(confirms.total for confirms in self._confirms)

    @property
    def unconfirmed(self) -> int:
        """Publishes the broker has not confirmed (or refused) yet: those of channels without
        publisher confirms stay unconfirmed forever."""
        return sum(confirms.unconfirmed for confirms in self._confirms)

    @property
    def channels_opened(self) -> int:
        """``channel.open`` frames the clients sent, on every connection so far."""
        return sum(channels.opened for channels in self._channels)

    @property
    def open_channels(self) -> int:
        """Channels open now: opened and not closed since, on connections still open."""
        return sum(len(channels.open) for channels in self._channels if channels.connected)

    @property
    def held_connections(self) -> int:
        """Broker sides that a half-open cut keeps open (and silent)."""
        return sum(1 for writer in self._held if not writer.is_closing())

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

    def cut(self, half_open: bool = False) -> None:
        """Abort every open connection in both directions (the broker sees a dead peer).

        ``half_open=True``: abort only the client's side; the broker's side stays open, and
        nothing more crosses it, as in a partition. The broker notices only when its heartbeat
        times out, so it keeps the old connection's exclusive queues locked meanwhile.
        """
        for client, upstream in tuple(self._pairs):
            if half_open:
                self._held.add(upstream)
            else:
                upstream.transport.abort()
            client.transport.abort()
        self._pairs.clear()

    def release_held(self) -> None:
        """Close the broker sides that a half-open cut kept open (the partition heals)."""
        for writer in tuple(self._held):
            writer.transport.abort()
        self._held.clear()

    def refuse(self) -> None:
        """Start an outage: cut what is open and drop new connections until :meth:`accept`."""
        self._refusing = True
        self.cut()

    def accept(self) -> None:
        """End the outage."""
        self._refusing = False

    def pause(self) -> None:
        """Stall every connection: bytes are held back (both ways) until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """End the stall; what was held back crosses now, in order."""
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        self.release_held()
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
        confirms = Confirms()
        self._confirms.append(confirms)
        channels = Channels()
        self._channels.append(channels)
        client_frames, broker_frames = Frames(from_client=True), Frames(from_client=False)

        def client_sent(data: bytes) -> None:
            for channel, method, arguments in client_frames.feed(data):
                confirms.from_client(channel, method)
                channels.seen(channel, method, from_client=True)
                self.from_client[method] += 1
                if method == QUEUE_DECLARE and (declared := QueueDeclared.read(arguments)):
                    self.queues_declared.append(declared)

        def broker_sent(data: bytes) -> None:
            for channel, method, arguments in broker_frames.feed(data):
                confirms.from_broker(channel, method, arguments)
                channels.seen(channel, method, from_client=False)
                self.from_broker[method] += 1

        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, self._flowing, client_sent)),
            asyncio.create_task(self._pump(up_reader, writer, self._flowing, broker_sent)),
        ]
        self._tasks.update(pumps)
        try:
            # When either side hangs up, close the other: the proxy never keeps a half.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pairs.discard(pair)
            channels.connected = False
            for pump in pumps:
                pump.cancel()
            for side in pair:
                if side not in self._held:
                    side.close()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flowing: asyncio.Event,
        seen: Callable[[bytes], None],
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await flowing.wait()
                seen(data)  # before it is written: what the client sees, the proxy saw first
                writer.write(data)
                await writer.drain()

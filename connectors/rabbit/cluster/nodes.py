"""Lesson "cluster": a client that knows every node of the cluster.

aio-pika connects to one URL, and its robust connection reconnects to that same URL. When that
node dies, "reconnecting" means waiting for the dead node. A client of a cluster keeps the list
of nodes instead, and when its node goes away it connects to the next one:

    connection, node = await nodes.connect()          # the first node that answers
    ...
    reason = await nodes.lost(connection)             # returns when that connection is gone
    connection, node = await nodes.connect(node + 1)  # carry on through the next node

The list comes from RABBITMQ_NODES (the nodes' URLs, separated by spaces or commas), else from
RABBITMQ_URL alone: the scripts work against a single broker too.
"""

import asyncio
import logging
import os
import time

import aio_pika
from aio_pika.abc import AbstractConnection

from connectors.rabbit import lesson

NODES = (os.environ.get("RABBITMQ_NODES") or lesson.rabbitmq_url()).replace(",", " ").split()
# How losing a node shows in aio-pika: a connection error during a call, or, between calls, a
# channel found closed (ChannelInvalidStateError). Either way: go on through another node.
LOST = (
    ConnectionError,
    TimeoutError,
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
)
PAUSE = 1.0  # seconds to wait before trying again when the nodes keep failing us
_connected_at: float | None = None  # when connect() last succeeded; None: not yet

NO_NODE = """\
No node answers: {nodes}.
Start a cluster, and list its nodes in every terminal you use:
  make cluster
  export RABBITMQ_NODES="amqp://127.0.0.1:PORT1/ amqp://127.0.0.1:PORT2/ amqp://127.0.0.1:PORT3/"
or start one broker (make broker) and use the RABBITMQ_URL it prints, without RABBITMQ_NODES."""


def why(error: BaseException) -> str:
    """What went wrong, in one line (a closed channel says nothing useful about itself)."""
    if isinstance(error, aio_pika.exceptions.ChannelInvalidStateError):
        return "the connection is gone"
    return str(error) or type(error).__name__


def name(node: int) -> str:
    """``node 2 (amqp://guest:****@127.0.0.1:5682/)``: safe to print."""
    return f"node {node % len(NODES) + 1} ({lesson.masked(NODES[node % len(NODES)])})"


async def connect(first: int = 0) -> tuple[AbstractConnection, int]:
    """Try the nodes in turn, from ``first`` on, round after round, until one answers.

    At the start, when no node answers at all, say how to start a cluster, and exit. Later, a
    connection lost right after it was made means the cluster cannot serve us yet (say, the one
    node that holds our queue is down): then wait a moment, instead of spinning."""
    global _connected_at
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # we print what happens
    if _connected_at is not None and time.monotonic() - _connected_at < PAUSE:
        await asyncio.sleep(PAUSE)
    tried = 0
    while True:
        node = (first + tried) % len(NODES)
        try:
            connection = await aio_pika.connect(NODES[node], timeout=5)
        except aio_pika.exceptions.ProbableAuthenticationError:  # not an outage: stop here
            raise SystemExit(f"{name(node)} refused the login: wrong user or password") from None
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
            print(f" [!] {name(node)} does not answer ({why(error)})")
        else:
            print(f" [*] Connected to {name(node)}")
            _connected_at = time.monotonic()
            return connection, node
        tried += 1
        if tried % len(NODES) == 0:  # every node refused
            if _connected_at is None:  # ... from the start: probably none is running
                raise SystemExit(NO_NODE.format(nodes=", ".join(map(lesson.masked, NODES))))
            await asyncio.sleep(PAUSE)  # ... during an outage: give them a moment


async def lost(connection: AbstractConnection) -> str:
    """Wait until ``connection`` is gone (its node died, or the network broke); say why."""
    gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_close(_sender: object, error: BaseException | None = None) -> None:
        if not gone.done():
            gone.set_result(why(error) if error else "closed")

    connection.close_callbacks.add(on_close)
    return await gone

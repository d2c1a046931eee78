"""``make queues``: the queues of your broker, with their ready and unacknowledged counts.

What the management UI's *Queues* tab shows, in a terminal, for the broker the lessons use
(``RABBITMQ_URL``, else ``amqp://guest:guest@localhost:5672/``). The counts come from the first
source that can be trusted to speak for *that* broker:

1. a node the course started itself (``make broker``): its own ``rabbitmqctl``;
2. a management API proven to manage it (see :func:`course.broker.manages`);
3. the local ``rabbitmqctl``, when the URL is this machine's port 5672 and the tool's listing
   proves it is the same broker (it shows a queue with a random name that we just declared);
4. otherwise the course's own queue names, asked one by one over AMQP: ready messages and
   consumers only, since AMQP does not tell how many are unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from yarl import URL

from course.broker import DEFAULT_URL, BrokerUnavailable, mask_url, wait_ready
from course.broker.common import management_for, management_request
from course.broker.node import node_ctl
from course.broker.resolve import WANTS, read_state

# The fixed names the lessons and run scripts use; the last resort asks for these.
COURSE_QUEUES = ("hello", "ack", "logger", "durable", "transient", "worker_metaclass", "rpc_queue")
COLUMNS = ("name", "messages_ready", "messages_unacknowledged", "consumers", "durable")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

Row = dict[str, Any]


def from_recorded_node(url: str) -> tuple[list[Row], str] | None:
    """1. A node `make broker` started, if the URL reaches it: its own rabbitmqctl."""
    parsed = URL(url)
    for want in WANTS:
        state = read_state(want)
        if not state or state.get("kind") != "node":
            continue
        node_url = URL(state["url"])
        if (parsed.host in LOCAL_HOSTS) and parsed.port == node_url.port:
            output = node_ctl(state, "list_queues", "-q", "--no-table-headers", "-p",
                              _vhost(url), *COLUMNS)  # fmt: skip
            return _parse(output), f"rabbitmqctl of {state['node']}, which `make broker` started"
    return None


def from_management(url: str) -> tuple[list[Row], str] | None:
    """2. A management API proven to be this broker's."""
    api = management_for(url)
    if api is None:
        return None
    vhost = urllib.parse.quote(_vhost(url), safe="")
    listed = management_request(api, url, "GET", f"queues/{vhost}")
    rows = [{column: entry.get(column, "?") for column in COLUMNS} for entry in listed]
    return rows, f"the management API at {api}"


async def _with_nonce(url: str, list_queues: Callable[[], str]) -> str | None:
    """Run ``list_queues`` while an exclusive queue with a random name exists on the broker of
    ``url``; return its output only if that queue shows up in it (the proof)."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        nonce = f"course.proof.{uuid.uuid4().hex}"
        await channel.declare_queue(nonce, exclusive=True)
        output = await asyncio.to_thread(list_queues)
        return output if nonce in output else None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def from_local_ctl(url: str) -> tuple[list[Row], str] | None:
    """3. The local rabbitmqctl, only for localhost:5672, and only if it proves itself."""
    parsed = URL(url)
    tool = shutil.which("rabbitmqctl")
    if tool is None or parsed.host not in LOCAL_HOSTS or (parsed.port or 5672) != 5672:
        return None

    def list_queues() -> str:
        command = [tool, "list_queues", "-q", "--no-table-headers", "-p", _vhost(url), *COLUMNS]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return result.stdout if result.returncode == 0 else ""

    output = asyncio.run(_with_nonce(url, list_queues))
    if output is None:
        return None
    rows = [row for row in _parse(output) if not str(row["name"]).startswith("course.proof.")]
    return rows, "the local rabbitmqctl (proven to be this broker)"


def from_amqp(url: str) -> tuple[list[Row], str]:
    """4. The course's queue names, one passive declaration each."""
    import aio_pika

    async def ask() -> list[Row]:
        rows = []
        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            for name in COURSE_QUEUES:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    continue  # no such queue
                result = queue.declaration_result
                rows.append({"name": name, "messages_ready": result.message_count,
                             "messages_unacknowledged": "?", "consumers": result.consumer_count,
                             "durable": "?"})  # fmt: skip
                with contextlib.suppress(Exception):
                    await channel.close()
        return rows

    return asyncio.run(ask()), (
        "AMQP, asking for the course's queue names one by one (no tool here can list every "
        "queue of this broker, or tell the unacknowledged counts)"
    )


def _vhost(url: str) -> str:
    return urllib.parse.unquote(URL(url).raw_path.lstrip("/")) or "/"


def _parse(output: str) -> list[Row]:
    rows = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == len(COLUMNS):
            rows.append(dict(zip(COLUMNS, fields, strict=True)))
    return rows


def table(rows: list[Row]) -> list[str]:
    width = max([len("queue"), *(len(str(row["name"])) for row in rows)])
    lines = [f"  {'queue':<{width}}  {'ready':>7}  {'unacked':>7}  {'consumers':>9}  durable"]
    for row in sorted(rows, key=lambda row: str(row["name"])):
        durable = {"true": "yes", "false": "no", True: "yes", False: "no"}.get(row["durable"], "?")
        lines.append(
            f"  {row['name']!s:<{width}}  {row['messages_ready']!s:>7}  "
            f"{row['messages_unacknowledged']!s:>7}  {row['consumers']!s:>9}  {durable}"
        )
    return lines


def main() -> int:
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_URL
    try:
        wait_ready(url, 5.0)
    except BrokerUnavailable as error:
        print(f"No broker answers at {mask_url(url)} ({error}). Start one: make broker",
              file=sys.stderr)  # fmt: skip
        return 1
    for source in (from_recorded_node, from_management, from_local_ctl):
        try:
            found = source(url)
        except (OSError, ValueError, subprocess.SubprocessError):
            found = None
        if found is not None:
            break
    else:
        found = from_amqp(url)
    rows, how = found
    print(f"Queues on {mask_url(url)} (vhost {_vhost(url)}), from {how}:")
    print("\n".join(table(rows)) if rows else "  (no queues)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

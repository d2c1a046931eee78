"""What every way of getting a broker shares: the Broker record, readiness, masking, processes."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
ROOT = Path(__file__).resolve().parents[2]

# How long each step may take before we move on (seconds).
URL_READY_TIMEOUT = 5.0  # RABBITMQ_URL: a platform broker may still be booting
LOCAL_PROBE_TIMEOUT = 2.0  # localhost:5672: answers at once or is not there
NODE_READY_TIMEOUT = 60.0  # a private node is usually ready in 3-10 s
COMPOSE_READY_TIMEOUT = 120.0

OPTIONS = """\
Ways to get a broker (any one is enough):
  * Docker:        docker compose up -d        (then: make test / make demo)
  * Your own:      export RABBITMQ_URL=amqp://user:password@host:5672/
  * Local install: apt install rabbitmq-server  (Debian/Ubuntu; `make setup` does it as root)
                   brew install rabbitmq         (macOS)
  The course then starts a private node of it by itself, and stops it afterwards."""


class BrokerUnavailable(RuntimeError):
    """No broker could be found or started; the message says why and what to do."""


def mask_url(url: str | URL) -> str:
    """Return ``url`` with its password replaced by ``****`` (safe to print or log)."""
    try:
        parsed = URL(str(url))
    except (TypeError, ValueError):
        return "<unparsable URL>"
    if parsed.password is None:
        return str(parsed)
    return str(parsed.with_password("****"))


def export_url(url: str) -> str:
    """``url`` fit to print in an export line: the default guest/guest login is left out
    (clients assume it), and any other password is masked."""
    parsed = URL(url)
    if (parsed.user, parsed.password) == ("guest", "guest"):
        return str(parsed.with_user(None))
    return mask_url(parsed)


@dataclass
class Broker:
    """A broker that answers: where it is, what it runs, where it came from."""

    url: str
    source: str
    seconds: float = 0.0
    management_url: str | None = None  # only ever one proven to manage *this* broker
    started: dict[str, Any] = field(default_factory=dict)  # what we started, to stop it again
    version: str = ""  # e.g. "4.0.5", from the broker's own AMQP greeting
    denies_transient: bool | None = None  # refuses transient non-exclusive queues (4.3 default)
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Broker(url={mask_url(self.url)!r}, source={self.source!r})"

    @property
    def major(self) -> int:
        """The major version (3, 4, ...), 0 if unknown."""
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    def flavour(self) -> str:
        """``RabbitMQ 4.0.5 (4.3 defaults: transient shared queues refused)``."""
        text = f"RabbitMQ {self.version or '(version unknown)'}"
        if self.denies_transient:
            text += " (4.3 defaults: transient shared queues refused)"
        elif self.denies_transient is False and self.major >= 4:
            text += " (permits transient shared queues, unlike 4.3's defaults)"
        return text

    def describe(self) -> str:
        return (
            f"{self.flavour()} from {self.source}: {mask_url(self.url)} "
            f"(ready in {self.seconds:.1f} s)"
        )

    @property
    def owned(self) -> bool:
        """True when this process (or `make broker`) started the broker."""
        return self._stop is not None or bool(self.started)

    def stop(self) -> None:
        """Stop the broker if we started it; a broker we merely found is left alone."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


# --------------------------------------------------------------------------- readiness


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even if a loop is already running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _try_amqp(url: str, timeout: float) -> dict[str, Any]:
    """Open and close one AMQP connection; return the broker's server properties."""
    import aio_pika

    parsed = URL(url)
    port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
    # A bare TCP connect first: quick, and it keeps aiormq from logging every refused attempt.
    _reader, writer = await asyncio.wait_for(asyncio.open_connection(parsed.host, port), timeout)
    writer.close()
    connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout), timeout)
    try:
        return dict(connection.transport.connection.server_properties or {})
    finally:
        await connection.close()


async def _wait_amqp(url: str, deadline: float, retry: bool) -> dict[str, Any]:
    while True:
        left = deadline - time.monotonic()
        try:
            return await _try_amqp(url, max(0.5, min(left, 5.0)))
        except Exception as error:  # any failure means "not yet"
            if not retry or time.monotonic() + 0.25 >= deadline:
                raise BrokerUnavailable(_reason(error, url)) from error
            await asyncio.sleep(0.25)


def _reason(error: BaseException, url: str) -> str:
    text = str(error) or type(error).__name__
    password = URL(url).password
    if password:
        text = text.replace(password, "****")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer before the deadline"
    if "ACCESS_REFUSED" in text or "authentication" in text.lower():
        return "the broker refused the login (wrong user, password or vhost)"
    if isinstance(error, ConnectionError) or "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:200]


def wait_ready(url: str, timeout: float, retry: bool = True) -> dict[str, Any]:
    """Block until an AMQP connection to ``url`` opens, or raise :class:`BrokerUnavailable`.

    Returns the broker's server properties (``version``, ``cluster_name``, ...)."""
    return run_sync(_wait_amqp(url, time.monotonic() + timeout, retry))


async def _denies_transient(url: str) -> bool:
    """Ask the broker: does it refuse a transient (non-durable) non-exclusive queue?

    Declares one with a unique name, auto-deleted, and deletes it at once when it is allowed.
    """
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    quiet = _Refusals()  # the refusal closes the connection; aiormq would log it as an error
    logging.getLogger("aiormq.connection").addFilter(quiet)
    try:
        channel = await connection.channel()
        name = f"course.probe.transient.{uuid.uuid4().hex[:10]}"
        try:
            await channel.declare_queue(name, durable=False, exclusive=False, auto_delete=True)
        except aio_pika.exceptions.AMQPError as error:
            if "transient_nonexcl_queues" in str(error) or "541" in str(error):
                return True
            raise
        await channel.queue_delete(name)
        return False
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
        logging.getLogger("aiormq.connection").removeFilter(quiet)


class _Refusals(logging.Filter):
    """Drops aiormq's log records of the refusal the probe provokes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += str(record.exc_info[1])
        return "transient_nonexcl_queues" not in text


def inspect(broker: Broker, properties: dict[str, Any] | None = None) -> Broker:
    """Fill in the broker's version and, on 4.x, whether it has 4.3's defaults."""
    if properties is None:
        properties = wait_ready(broker.url, URL_READY_TIMEOUT)
    version = properties.get("version", b"")
    broker.version = version.decode() if isinstance(version, bytes) else str(version)
    if broker.major >= 4:
        try:
            broker.denies_transient = run_sync(_denies_transient(broker.url))
        except Exception:  # the probe is informative only
            broker.denies_transient = None
    elif broker.major:
        broker.denies_transient = False
    return broker


def _direct_reply_round_trip(url: str) -> bool:
    """One request and its reply through direct reply-to, with pika: did the reply arrive?

    A RabbitMQ 4.0 node that has just started sometimes returns the first reply sent to a
    direct reply-to address as unroutable (312 NO_ROUTE); later ones arrive. The checks here
    wait for one round trip that works before they start.
    """
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        got: list[bytes] = []
        channel.basic_consume(
            "amq.rabbitmq.reply-to", lambda *call: got.append(call[3]), auto_ack=True
        )
        probe = channel.queue_declare("", exclusive=True).method.queue
        asking = pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")
        channel.basic_publish(exchange="", routing_key=probe, body=b"ask", properties=asking)
        for _ in range(50):
            method, properties, _body = channel.basic_get(probe, auto_ack=True)
            if method is not None:
                connection.channel().basic_publish("", properties.reply_to, b"answer")
                break
            connection.sleep(0.01)
        for _ in range(50):
            connection.process_data_events(time_limit=0.01)
            if got:
                return True
        return False
    finally:
        connection.close()


def wait_for_direct_reply_to(url: str, timeout: float = 10.0) -> bool:
    """Wait until a reply sent to a direct reply-to address arrives; False if none did in
    ``timeout`` seconds. Private 4.x nodes wait for it before they count as ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _direct_reply_round_trip(url):
            return True
        time.sleep(0.2)
    return False


# --------------------------------------------------------------------------- management API


def management_request(
    management_url: str, amqp_url: str, method: str, path: str, body: object = None
) -> Any:
    """One call to the management HTTP API, as the AMQP URL's user."""
    parsed = URL(amqp_url)
    token = f"{parsed.user or 'guest'}:{parsed.password or 'guest'}".encode()
    request = urllib.request.Request(
        management_url.rstrip("/") + "/api/" + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": "Basic " + base64.b64encode(token).decode(),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def management_answers(url: str, user: str = "guest", password: str = "guest") -> bool:
    """True if the management HTTP API answers at ``url`` with these credentials."""
    request = urllib.request.Request(url.rstrip("/") + "/api/overview")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


async def _manages(amqp_url: str, management_url: str) -> bool:
    import aio_pika

    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        # A name only this process knows, on a queue that lives as long as this connection.
        nonce = f"course.proof.{uuid.uuid4().hex}"
        await channel.declare_queue(nonce, exclusive=True)
        vhost = URL(amqp_url).path.lstrip("/") or "/"
        quoted = "/".join(urllib.parse.quote(part, safe="") for part in (vhost, nonce))
        try:
            found = await asyncio.to_thread(
                management_request, management_url, amqp_url, "GET", f"queues/{quoted}"
            )
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return isinstance(found, dict) and found.get("name") == nonce
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def manages(amqp_url: str, management_url: str) -> bool:
    """Prove that ``management_url`` manages the very broker ``amqp_url`` reaches.

    Over AMQP, declare an exclusive queue with a random name; the management API must show it.
    A management UI on the same host, or on the usual port, proves nothing: it may belong to
    another broker."""
    try:
        return run_sync(_manages(amqp_url, management_url))
    except Exception:
        return False


def management_for(amqp_url: str) -> str | None:
    """The management API of the broker at ``amqp_url``, when one answers and is proven its own."""
    parsed = URL(amqp_url)
    explicit = os.environ.get("RABBITMQ_MANAGEMENT_URL") or os.environ.get("RABBITMQ_MANAGER_URL")
    candidates = [explicit] if explicit else [f"http://{parsed.host}:15672/"]
    for candidate in candidates:
        user, password = parsed.user or "guest", parsed.password or "guest"
        if management_answers(candidate, user, password) and manages(amqp_url, candidate):
            return candidate
    return None


# --------------------------------------------------------------------------- processes, ports


def free_port(preferred: int | None = None) -> int:
    """A TCP port nobody listens on at 127.0.0.1 (``preferred`` if it is free)."""
    if preferred is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie is already dead
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def node_processes(marker: str) -> list[int]:
    """Live processes whose command line or working dir mentions ``marker`` (Linux only)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd") if (entry / "cwd").exists() else ""
        except OSError:
            continue
        if (marker in command or marker in cwd) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found

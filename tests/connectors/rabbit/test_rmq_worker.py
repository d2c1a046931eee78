"""Task 1: WorkerClient and Worker (connectors/rabbit/task/rmq_worker.py).

    pytest tests/connectors/rabbit/test_rmq_worker.py -vv

Every failure names the step of the task text (connectors/rabbit/task/README.md) it checks and
what most likely went wrong. The starred tests (Step 5) are skipped until you delete their
``@pytest.mark.skip`` line.

The tests talk to a real RabbitMQ broker. Your code connects through a small proxy
(``proxy.url``), so that the tests can count its connections the way the broker sees them,
stall them and cut them. Each test uses its own queue, deleted afterwards. The tests only look
at your queue (``passive=True``), or declare it exactly as the task says (``durable=True``)
when they must create it first; and they check on the broker itself that every task is
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit.task.rmq_worker import Worker, WorkerClient, WorkerClientConfig, WorkerConfig
from course.checks import confirm_verdict, eventually, holds_for, step
from course.refusals import explain

pytestmark = [pytest.mark.task(1), pytest.mark.timeout(30)]

T = TypeVar("T")
WORK = 0.1  # seconds of "work" in the test handlers (the lesson's handlers take 5 s)
SHORT = 0.05
QUIET = 0.4  # seconds to watch that something does not happen
MAX_TRIES = 3  # the task text: a failing task is tried at most this many times in all
RETRY_QUIET = 2.5  # seconds without a new try after which a failing task counts as given up

# Labels of the calls into your code. A call that hangs fails its test; a later test that
# needs the same call fails at once, pointing to the first.
CLIENT_PUT = "Client step 1: client.put({...})"
CLIENT_STOP = "Client step 2: client.stop()"
WORKER_CALL = "Step 1: worker._worker(message)"
START = "Step 2: worker.start()"
STOP = "Step 3: worker.stop()"

START_HINT = (
    "start() must connect, declare the queue, register the consumer and return; it must not "
    "wait for messages (no `await asyncio.Future()` or endless loop in it)."
)
DURABLE_WHY = (
    "A durable queue, with persistent tasks, survives a broker restart, and RabbitMQ 4.3 "
    "refuses to declare a shared queue that is not durable."
)

_stopped: list[WorkerClient | Worker] = []  # what the running test has stopped itself
_stop_hung = False  # a stop() that hung once is not waited for long again, when cleaning up


# --------------------------------------------------------------------------- failing plainly


def fail(message: str) -> NoReturn:
    """Fail the test with one plain line (no traceback: the message says it all)."""
    pytest.fail(" ".join(message.split()), pytrace=False)


def require(condition: object, message: str | Callable[[], str]) -> None:
    if not condition:
        fail(message() if callable(message) else message)


def describe(error: BaseException) -> str:
    """``KeyError: 'x' (rmq_worker.py, line 42, in start)``: the error, and where it was."""
    text = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    ours = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).name == "rmq_worker.py"
    ]
    if ours:
        text += f" (rmq_worker.py, line {ours[-1].lineno}, in {ours[-1].name})"
    return text


def error_hint(error: BaseException) -> str:
    """What a few errors that students meet here mean."""
    text = str(error)
    if "Set of Tasks/Futures is empty" in text:
        return (
            "asyncio.wait() refuses an empty set: wait only when handlers are running "
            "(`if self.tasks: await asyncio.wait(self.tasks)`)."
        )
    if type(error).__name__ == "MessageProcessError":
        return (
            "A message can be settled only once: ack (or reject) it once, after the handler "
            "returned. (`async with msg.process():` acks by itself at the end of its block.)"
        )
    return ""


async def call(
    awaitable: Awaitable[T], label: str, hint: str = "", *, timeout: float = 5.0, key: str = ""
) -> T:
    """Await your code; a hang or an exception fails the test with ``label`` and a hint.

    A broker's refusal (a queue declared the wrong way, ...) is explained instead: what the
    broker refused, and what to change.
    """
    try:
        return await step(awaitable, label=label, timeout=timeout, hint=hint, key=key or None)
    except NotImplementedError:
        raise  # the course plugin says which method is still a stub
    except Exception as error:
        raised = error
    transient = re.search(
        r"inequivalent arg 'durable' for queue '([^']*)'.*received 'false'", str(raised)
    )
    if transient:
        fail(
            f"{label}: your code declared the queue {transient.group(1)!r} transient "
            "(durable=False), but it exists durable, as every program declares it. Declare it "
            f"with declare_queue(queue_name, durable=True). {DURABLE_WHY}"
        )
    refusal = explain(raised)
    if refusal:
        fail(f"{label}: {refusal}")
    fail(f"{label} raised {describe(raised)}. {error_hint(raised) or hint}")


# --------------------------------------------------------------------------- starting, stopping


@pytest.fixture(autouse=True)
async def close_what_was_left_open(proxy) -> AsyncIterator[None]:
    """After each test, close the connections your code left open.

    Then a stop() that forgets to close its connection fails its own test, and does not hang
    the tests after it (a robust connection that nobody closes keeps reconnecting).
    """
    yield
    for thing in gc.get_objects():
        if (
            isinstance(thing, aio_pika.Connection)
            and not thing.is_closed
            and thing.url.port == proxy.port
        ):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(thing.close(), timeout=5)


async def start(worker: Worker) -> None:
    await call(worker.start(), START, START_HINT)


async def stop(thing: WorkerClient | Worker, label: str, hint: str = "") -> None:
    """Call ``thing.stop()`` as a checked step of the test."""
    _stopped.append(thing)
    await call(thing.stop(), label, hint)


@contextlib.asynccontextmanager
async def stopping(*started: WorkerClient | Worker) -> AsyncIterator[None]:
    """At the end of the test, stop what it started and did not stop itself.

    Quietly: the test's own verdict is the one that counts.
    """
    global _stop_hung
    try:
        yield
    finally:
        for thing in started:
            if any(thing is done for done in _stopped):
                continue
            try:
                await asyncio.wait_for(thing.stop(), 0.2 if _stop_hung else 5)
            except TimeoutError:
                _stop_hung = True
            except Exception:
                pass
        _stopped.clear()


def client_for(url: str, queue: str) -> WorkerClient:
    return WorkerClient(WorkerClientConfig(rabbit_url=url, queue_name=queue))


async def put(client: WorkerClient, task: dict) -> None:
    # 10 s: a persistent task is confirmed once it is on disk, which a busy machine may delay.
    await call(client.put(task), CLIENT_PUT, timeout=10)


# --------------------------------------------------------------------------- the queue


def shape_problem(error: Exception, queue: str, where: str) -> str:
    """Why the broker refused the test's ``declare_queue(queue, durable=True)``."""
    text = str(error)
    if "inequivalent arg 'durable'" in text:
        return (
            f"{where}: your code declared the queue {queue!r} transient (durable=False). "
            f"Declare it with declare_queue(queue_name, durable=True). {DURABLE_WHY}"
        )
    arg = text.split("inequivalent arg '", 1)[-1].split("'", 1)[0] if "inequivalent" in text else ""
    return (
        f"{where}: your code declared the queue {queue!r} with other settings than durable=True "
        f"and no arguments{f' ({arg} differs)' if arg else ''}: {explain(error) or text}. Every "
        "program that uses the work queue must declare it the same way: "
        "declare_queue(queue_name, durable=True)."
    )


async def queue_state(
    amqp: aio_pika.abc.AbstractConnection, queue: str, where: str = "", missing: str = ""
) -> tuple[int, int]:
    """(tasks waiting, consumers) of ``queue``, as the broker reports them (a passive look)."""
    channel = await amqp.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        problem = f"{where}: {missing or f'there is no queue {queue!r} on the broker.'}"
    except aio_pika.exceptions.ChannelLockedResource:
        problem = (
            f"{where}: the queue {queue!r} is exclusive to your code's connection, so no other "
            "program can use it. A work queue is shared: declare it with "
            "declare_queue(queue_name, durable=True), without exclusive=True."
        )
    except aio_pika.exceptions.ChannelClosed as error:
        problem = (
            f"{where}: the tests cannot look at the queue {queue!r}: {explain(error) or error}"
        )
    else:
        with contextlib.suppress(Exception):
            await channel.close()
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    fail(problem)


async def check_durable(amqp: aio_pika.abc.AbstractConnection, queue: str, where: str) -> None:
    """The queue exists, and is durable with no other arguments (as the task declares it)."""
    await queue_state(amqp, queue, where)
    channel = await amqp.channel()
    try:
        await channel.declare_queue(queue, durable=True)  # refused if the queue differs
    except aio_pika.exceptions.ChannelClosed as error:
        problem = shape_problem(error, queue, where)
    else:
        with contextlib.suppress(Exception):
            await channel.close()
        return
    fail(problem)


async def publish(
    amqp: aio_pika.abc.AbstractConnection, queue: str, *tasks: dict, where: str = "Step 2"
) -> None:
    """Put tasks into the queue as the task text says (durable queue, persistent tasks, confirmed).

    Declares the queue ``durable=True``, as every program that uses it does; ``where`` is the
    step whose code may have declared it before (differently).
    """
    channel = await amqp.channel()
    try:
        await channel.declare_queue(queue, durable=True)
    except aio_pika.exceptions.ChannelClosed as error:
        problem = shape_problem(error, queue, where)
    else:
        for task in tasks:
            body = json.dumps(task).encode()
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(message, routing_key=queue)
        await channel.close()
        return
    fail(problem)


async def waiting(amqp: aio_pika.abc.AbstractConnection, queue: str) -> int:
    return (await queue_state(amqp, queue, "Step 2"))[0]


async def take(
    amqp: aio_pika.abc.AbstractConnection, queue: str, count: int, timeout: float = 5.0
) -> list[AbstractIncomingMessage]:
    """Take up to ``count`` messages out of the queue, waiting at most ``timeout`` seconds."""
    await queue_state(amqp, queue, "Client step 1")
    channel = await amqp.channel()
    declared = await channel.declare_queue(queue, passive=True)
    got: list[AbstractIncomingMessage] = []

    async def more() -> bool:
        message = await declared.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return len(got) >= count

    await poll(more, timeout=timeout, interval=0.05)
    await channel.close()
    return got


async def poll(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, interval: float = 0.02
) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (polled, never failing)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def assert_not_back(
    amqp: aio_pika.abc.AbstractConnection,
    queue: str,
    message: Callable[[int], str],
    expected: int = 0,
) -> None:
    """Check, for a short while, that no unacknowledged task returns to the queue."""
    counts: list[int] = []

    async def unchanged() -> bool:
        counts.append(await waiting(amqp, queue))
        return counts[-1] == expected

    await holds_for(
        unchanged, seconds=0.5, interval=0.1, message=lambda: message(counts[-1] - expected)
    )


def side_queues(names, queue: str) -> None:
    """Have the queues a solution may add for failed tasks deleted after the test too (the
    reference makes ``<queue>.retry.<delay>ms`` and ``<queue>.dead``)."""
    for suffix in (".retry", ".retry.1000ms", ".retry.2000ms", ".dead", ".dlq", ".failed"):
        names.also_delete_queue(queue + suffix)


def decoded(body: bytes) -> object:
    """The JSON in ``body``, or the raw bytes when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return body


def tasks(count: int, **fields: object) -> list[dict]:
    return [{"type": "event", "n": n, **fields} for n in range(count)]


# --------------------------------------------------------------------------- the test worker


class HandlerFailed(RuntimeError):
    """What the test handler raises for a task marked to fail."""


class Record:
    """What the test handler saw, task by task.

    A task is a dict ``{"n": number}`` with optional ``"work"`` (seconds it takes), ``"gate"``
    (it runs until the test opens its gate) and ``"fail"`` (``"first"``: its first try raises;
    ``"always"``: every try raises).
    """

    def __init__(self, capacity: int = 1, work: float = WORK) -> None:
        self.capacity = capacity
        self.work = work
        self.tries: dict[int, list[float]] = {}  # task -> when each of its tries started
        self.messages: dict[int, list[AbstractIncomingMessage]] = {}  # task -> its deliveries
        self.started = 0
        self.running = 0
        self.peak = 0
        self.cancelled = 0
        self.done: list[dict] = []  # the tasks that finished, in order
        self.acked_before_start = 0  # deliveries already acknowledged when the handler began
        self.over_capacity_after: int | None = None  # tasks done when capacity was first exceeded
        self.gates: dict[int, asyncio.Event] = {}
        self.all_open = False
        self.errors: list[BaseException] = []  # what escaped _worker
        self.ended: list[AbstractIncomingMessage] = []  # deliveries the handler returned from

    def gate(self, n: int) -> asyncio.Event:
        gate = self.gates.setdefault(n, asyncio.Event())
        if self.all_open:
            gate.set()
        return gate

    def open_all_gates(self) -> None:
        """Let every gated task run to its end, those that start later included."""
        self.all_open = True
        for gate in self.gates.values():
            gate.set()

    def tried(self, n: int) -> int:
        return len(self.tries.get(n, ()))

    def done_numbers(self) -> set[int]:
        return {task["n"] for task in self.done}

    def handled_twice(self) -> list[int]:
        counts: dict[int, int] = {}
        for task in self.done:
            counts[task["n"]] = counts.get(task["n"], 0) + 1
        return sorted(n for n, count in counts.items() if count > 1)

    def unsettled(self) -> list[AbstractIncomingMessage]:
        """Deliveries the handler is done with (or failed on) that nobody acked or rejected."""
        return [msg for msg in self.ended if not msg.processed]

    def check(self) -> bool:
        """Re-raise a stub's NotImplementedError from the consumer, so the failure names it."""
        for error in self.errors:
            if isinstance(error, NotImplementedError):
                raise error
        return False

    def trouble(self) -> str:
        """What escaped _worker (other than the test's own handler errors), for a message."""
        own = [error for error in self.errors if not isinstance(error, HandlerFailed)]
        return f" Meanwhile your _worker raised {describe(own[0])}." if own else ""

    async def handle(self, msg: AbstractIncomingMessage) -> None:
        task = json.loads(msg.body)
        n = task["n"]
        self.tries.setdefault(n, []).append(time.monotonic())
        self.messages.setdefault(n, []).append(msg)
        if msg.processed:
            self.acked_before_start += 1
        self.started += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running > self.capacity and self.over_capacity_after is None:
            self.over_capacity_after = len(self.done)
        try:
            if task.get("gate"):
                await asyncio.wait_for(self.gate(n).wait(), timeout=10)
            else:
                await asyncio.sleep(task.get("work", self.work))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        self.ended.append(msg)
        if task.get("fail") == "always" or (task.get("fail") == "first" and self.tried(n) == 1):
            raise HandlerFailed(f"task {n} failed (on purpose, for the test)")
        self.done.append(task)


def recording_worker(
    url: str, queue: str, capacity: int = 1, work: float = WORK
) -> tuple[Worker, Record]:
    """A Worker subclass, as a student would write one, whose handler reports to a Record."""
    record = Record(capacity, work)

    class RecordingWorker(Worker):
        async def handler(self, msg: AbstractIncomingMessage) -> None:
            await record.handle(msg)

        async def _worker(self, msg: AbstractIncomingMessage) -> None:
            try:
                await super()._worker(msg)
            except Exception as error:
                record.errors.append(error)  # aio-pika would only log it
                raise

    config = WorkerConfig(rabbit_url=url, queue_name=queue, capacity=capacity)
    return RecordingWorker(config), record


# --------------------------------------------------------------------------- messages


ACKED_EARLY = (
    "Step 1: the handler got a message that _worker had already acknowledged: the broker then "
    "counts the task as done before it has even started, and a crash loses it. Ack only after "
    "`await self.handler(msg)` returned."
)


def progress(record: Record, label: str, expected: int, timeout: float) -> str:
    """Why the handler did not finish ``expected`` tasks: from what it saw."""
    if record.started == 0:
        return (
            f"{label}: {expected} tasks waited, and the handler never ran within {timeout:g} s. "
            "Is _worker the consumer (queue.consume(self._worker)), and does it await the "
            f"handler?{record.trouble()}"
        )
    unsettled = record.unsettled()
    if unsettled:
        return (
            f"{label}: the handler finished {len(record.done)} of {expected} tasks within "
            f"{timeout:g} s, and {len(unsettled)} of those messages were never acknowledged: "
            "the broker sends a worker no more than prefetch_count unacknowledged tasks, so it "
            "stalls. `await msg.ack()` once the handler returned (Step 1)."
            f"{record.trouble()}"
        )
    return (
        f"{label}: the handler finished {len(record.done)} of {expected} tasks within "
        f"{timeout:g} s.{record.trouble()}"
    )


def endless(record: Record, n: int, label: str) -> str:
    times = record.tries.get(n, [])
    spent = f" in {times[-1] - times[0]:.1f} s" if len(times) > 1 else ""
    return (
        f"{label}: the task whose handler always raises was tried {len(times)} times{spent}, "
        "and would be tried forever: every time it failed, it went back into the queue. A "
        f"failing task may be tried at most {MAX_TRIES} times in all, then dropped (or parked in "
        "another queue) with a log line: reject it without requeue (`await msg.reject()`), or "
        "requeue it only while msg.redelivered is False (Step 5); msg.nack() requeues by "
        "default."
    )


def handled_twice(record: Record, label: str) -> str:
    twice = record.handled_twice()
    return (
        f"{label}: the handler finished task(s) {twice} more than once: the broker delivered "
        "them again, so it did not count them as acknowledged. Ack each message exactly once, "
        "after its handler (acking twice, or acking on another channel, makes the broker close "
        "the channel, and every unacknowledged task goes back)."
    )


# --------------------------------------------------------------------------- WorkerClient


class TestWorkerClient:
    @pytest.mark.points(2)
    async def test_put_sends_the_dict_as_json(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, where="Client step 1")  # the queue exists, declared durable
        client = client_for(proxy.url, queue)
        task = {"type": "event", "id": 7, "tags": ["a", "b"]}
        async with stopping(client):
            await put(client, task)
            got = await take(amqp, queue, 1)
        require(
            got,
            f"Client step 1: put() returned, but nothing arrived in the queue {queue!r}. Publish "
            "through channel.default_exchange with routing_key=config.queue_name: the default "
            "exchange delivers to the queue of that name.",
        )
        body = got[0].body
        require(
            not isinstance(decoded(body), bytes),
            f"Client step 1: the message body is not JSON: {body[:80]!r}. "
            "Send json.dumps(data).encode(), not str(data).",
        )
        require(
            decoded(body) == task,
            f"Client step 1: the body decodes to {decoded(body)!r}, but the dict put() got was "
            f"{task!r}.",
        )

    @pytest.mark.points(1)
    async def test_put_declares_the_queue_durable(self, proxy, amqp, names) -> None:
        queue = names.queue()  # nobody has declared it yet: no worker has ever started
        client = client_for(proxy.url, queue)
        async with stopping(client):
            await put(client, {"type": "event"})
            await queue_state(
                amqp,
                queue,
                "Client step 1",
                missing=f"the queue {queue!r} did not exist before put(), and put() did not "
                "declare it, so the broker dropped the task. The default exchange drops a "
                "message when no queue has that name: declare the queue in put() "
                "(channel.declare_queue(config.queue_name, durable=True)) before publishing, "
                "so that tasks wait for a worker that starts later.",
            )
            await check_durable(amqp, queue, "Client step 1")
            got = await take(amqp, queue, 1)
        require(
            got,
            f"Client step 1: put() declared the queue {queue!r}, but the task never arrived in "
            "it. Publish through channel.default_exchange with routing_key=config.queue_name.",
        )

    @pytest.mark.points(1)
    async def test_put_sends_persistent_tasks(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, where="Client step 1")
        client = client_for(proxy.url, queue)
        async with stopping(client):
            await put(client, {"type": "event"})
            got = await take(amqp, queue, 1)
        require(got, f"Client step 1: put() returned, but nothing arrived in {queue!r}.")
        mode = got[0].delivery_mode
        require(
            mode == aio_pika.DeliveryMode.PERSISTENT,
            f"Client step 1: the task arrived as a transient message (delivery_mode="
            f"{int(mode) if mode else 'not set'}): a durable queue outlives a broker restart, "
            "but its transient messages do not. Publish aio_pika.Message(body, "
            "delivery_mode=aio_pika.DeliveryMode.PERSISTENT).",
        )

    @pytest.mark.points(1)
    async def test_puts_keep_their_order(self, proxy, amqp, names) -> None:
        queue = names.queue()
        client = client_for(proxy.url, queue)
        sent = tasks(5)
        async with stopping(client):
            for task in sent:
                await put(client, task)
            got = await take(amqp, queue, 5)
        received = [decoded(message.body) for message in got]
        require(
            received == sent,
            f"Client step 1: five put() calls should leave five tasks in the queue in the same "
            f"order; found {received!r}.",
        )

    @pytest.mark.points(1)
    async def test_puts_share_one_connection(self, proxy, names) -> None:
        client = client_for(proxy.url, names.queue())
        async with stopping(client):
            for task in tasks(3):
                await put(client, task)
            seen, still_open = proxy.connections_seen, proxy.open_connections
        kept = f", and kept all {seen} open" if still_open == seen else ""
        require(
            seen == 1,
            f"Client step 1: 3 put() calls opened {seen} connections to the broker{kept}. "
            "Connect once, on the first put(), keep the connection and its channel on self, "
            "and publish every later task over them: a connection costs several round trips "
            "to open, and memory on the broker while it is open.",
        )
        # The first tasks of a program often come at once, before the client has connected.
        client = client_for(proxy.url, names.queue())
        async with stopping(client):
            await call(
                asyncio.gather(*(client.put(task) for task in tasks(4))),
                "Client step 1: 4 put() calls at once",
                timeout=10,
            )
            seen = proxy.connections_seen - seen
        require(
            seen == 1,
            f"Client step 1: 4 put() calls made at once on a client not connected yet opened "
            f"{seen} connections to the broker. Each of them found no connection and opened "
            "one: guard the connect with an asyncio.Lock (async with self._lock: if "
            "self.connection is None: ...), so that only the first one connects.",
        )

    @pytest.mark.points(1)
    async def test_put_returns_once_the_broker_has_the_task(self, proxy, amqp, names) -> None:
        queue = names.queue()
        client = client_for(proxy.url, queue)
        async with stopping(client):
            await put(client, {"n": 0})  # connected, the queue declared
            # The proxy reads the AMQP frames: a confirm crosses it before put() can see it.
            verdict = await confirm_verdict(proxy, published_before=0)
            require(verdict != "nothing", "Client step 1: put() returned, and no task was sent.")
            require(
                verdict != "unconfirmed",
                "Client step 1: put() returned before the broker confirmed the task: its channel "
                "has no publisher confirms. Use connection.channel() (confirms are on; do not "
                "pass publisher_confirms=False) and await the publish.",
            )
            require(
                verdict != "later",
                "Client step 1: put() returned before its task was published and confirmed; the "
                "publish came afterwards. Await the publish in put() itself, not in a task that "
                "runs later (no asyncio.ensure_future/create_task).",
            )
            proxy.pause()  # no byte crosses the network now, either way
            try:
                pending = asyncio.ensure_future(client.put({"n": 1}))
                await asyncio.wait({pending}, timeout=QUIET)
                returned = pending.done() and pending.exception() is None
            finally:
                proxy.resume()
            require(
                not returned,
                "Client step 1: put() returned while the network to the broker was stalled, so "
                "the broker could not have confirmed the task: had it been lost on the way, "
                "nobody would know. Publish on a channel with publisher confirms "
                "(connection.channel() has them on; do not pass publisher_confirms=False) and "
                "await the publish: it then returns once the broker has the task.",
            )
            await call(
                pending, CLIENT_PUT, "It waited for the broker, which answers again.", timeout=10
            )
            got = await take(amqp, queue, 2)
        require(
            [decoded(message.body) for message in got] == [{"n": 0}, {"n": 1}],
            f"Client step 1: after two put() calls the queue held "
            f"{[decoded(message.body) for message in got]!r}.",
        )

    @pytest.mark.points(2)
    async def test_stop_closes_the_client_connection(self, proxy, amqp, names) -> None:
        client = client_for(proxy.url, names.queue())
        async with stopping(client):
            await put(client, {"n": 1})
            await put(client, {"n": 2})
            await stop(client, CLIENT_STOP)
            await eventually(
                lambda: proxy.open_connections == 0,
                timeout=5,
                message=lambda: (
                    f"Client step 2: after client.stop() the broker still sees "
                    f"{proxy.open_connections} open connection(s) from the client. Close the "
                    "connection in stop() (await connection.close(); closing the channel is "
                    "not enough)."
                ),
            )

    @pytest.mark.points(1)
    async def test_async_with_and_no_put(self, proxy) -> None:
        config = WorkerClientConfig(rabbit_url=proxy.url, queue_name="not-used")

        async def use_and_leave() -> None:
            async with WorkerClient(config):
                pass

        await call(
            use_and_leave(),
            "Client step 2: leaving `async with WorkerClient(config)` without any put()",
            "__aexit__ calls stop(), and stop() must also work when put() never opened a "
            "connection: close it only if there is one.",
        )


# --------------------------------------------------------------------------- Worker


class TestWorker:
    @pytest.mark.points(2)
    async def test_worker_runs_the_handler_and_acks(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, {"n": 1})
        channel = await amqp.channel()
        message = await (await channel.declare_queue(queue, passive=True)).get(timeout=5)
        worker, record = recording_worker(proxy.url, queue)
        await call(
            worker._worker(message),
            WORKER_CALL,
            "(This test calls _worker directly, on a worker that was not started.) It must run "
            "the handler, settle the message and return.",
        )
        require(not record.acked_before_start, ACKED_EARLY)
        require(
            record.done == [{"n": 1}],
            "Step 1: worker._worker(message) returned, but the handler did not run. Call it, "
            "and await it: `await self.handler(msg)`.",
        )
        await channel.close()  # a message that was not acked goes back to the queue now
        if message.processed:
            back = (
                "Step 1: the handler succeeded, but _worker gave the message back to the queue "
                "(nack or reject with requeue): acknowledge it, `await msg.ack()`."
            )
        else:
            back = (
                "Step 1: the handler succeeded, but the message went back to the queue: _worker "
                "did not acknowledge it. After the handler returns, `await msg.ack()` (an ack "
                "that is not awaited is never sent)."
            )
        await assert_not_back(amqp, queue, lambda _: back)

    @pytest.mark.points(2)
    async def test_start_returns_and_the_handler_gets_every_task(self, proxy, amqp, names) -> None:
        queue = names.queue()
        worker, record = recording_worker(proxy.url, queue, work=SHORT)
        async with stopping(worker):
            await start(worker)
            _, consumers = await queue_state(
                amqp,
                queue,
                "Step 2",
                missing=f"start() returned, but there is no queue {queue!r} on the broker. "
                "Declare it in start(): `await channel.declare_queue(self.config.queue_name, "
                "durable=True)`.",
            )
            await check_durable(amqp, queue, "Step 2")
            require(
                consumers >= 1,
                f"Step 2: start() returned, but the queue {queue!r} has no consumer. Register "
                "_worker as one: `await queue.consume(self._worker)`.",
            )
            await publish(amqp, queue, *tasks(3))
            await eventually(
                lambda: len(record.done) >= 3 or record.check(),
                timeout=5,
                message=lambda: progress(record, "Step 2: 3 tasks were put after start()", 3, 5),
            )
        require(not record.handled_twice(), lambda: handled_twice(record, "Step 2"))

    @pytest.mark.points(2)
    async def test_a_failing_handler_does_not_stall_the_worker(self, proxy, amqp, names) -> None:
        queue = names.queue()
        side_queues(names, queue)
        sent = tasks(6, work=SHORT)
        sent[1]["fail"] = "always"
        good = {0, 2, 3, 4, 5}
        await publish(amqp, queue, *sent)
        worker, record = recording_worker(proxy.url, queue, capacity=1)
        label = "Step 1: the handler raised on one of 6 tasks, as handlers sometimes do"

        def stalled() -> str:
            left = len(good - record.done_numbers())
            unsettled = record.tried(1) and not record.messages[1][-1].processed
            if unsettled and any(isinstance(e, HandlerFailed) for e in record.errors):
                return (
                    f"{label}, and _worker let the exception escape without settling that "
                    f"message. At capacity=1 the broker then sends nothing more: {left} of the 5 "
                    "other tasks never ran. Catch the handler's exception in _worker "
                    "(try/except) and reject the message, `await msg.reject()`; ack only when "
                    "the handler succeeded."
                )
            if unsettled:
                return (
                    f"{label}, and _worker never settled that message: at capacity=1 the broker "
                    f"then sends nothing more, and {left} of the 5 other tasks never ran. When "
                    "the handler raises, reject the message (`await msg.reject()`)."
                    f"{record.trouble()}"
                )
            return progress(record, label, 5, 5)

        async with stopping(worker):
            await start(worker)
            await eventually(
                lambda: good <= record.done_numbers() or record.tried(1) > MAX_TRIES
                or record.check(),
                timeout=5,
                message=stalled,
            )  # fmt: skip
            require(record.tried(1) <= MAX_TRIES, lambda: endless(record, 1, "Step 1"))
            await holds_for(
                lambda: record.tried(1) <= MAX_TRIES,
                seconds=1.0,
                message=lambda: endless(record, 1, "Step 1"),
            )

    @pytest.mark.points(2)
    async def test_processed_messages_are_acked(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, *tasks(3))
        worker, record = recording_worker(proxy.url, queue, work=SHORT)
        async with stopping(worker):
            await start(worker)
            await eventually(
                lambda: len(record.done) >= 3 or record.check(),
                timeout=5,
                message=lambda: progress(record, "Step 1: 3 tasks waited in the queue", 3, 5),
            )
            await stop(worker, STOP)
        require(not record.handled_twice(), lambda: handled_twice(record, "Step 1"))
        await assert_not_back(
            amqp,
            queue,
            lambda back: (
                f"Step 1: the handler finished all 3 tasks, but after stop() {back} of them came "
                "back to the queue: they were never acknowledged, so the broker hands them out "
                "again. `await msg.ack()` once the handler returns."
            ),
        )

    @pytest.mark.points(2)
    async def test_stop_closes_the_connection(self, proxy, names) -> None:
        worker, _ = recording_worker(proxy.url, names.queue())
        async with stopping(worker):
            await start(worker)
            await eventually(
                lambda: proxy.open_connections >= 1,
                timeout=5,
                message="Step 2: start() returned without opening a connection to the broker.",
            )
            await stop(worker, STOP)
            await eventually(
                lambda: proxy.open_connections == 0,
                timeout=5,
                message=lambda: (
                    f"Step 3: after stop() the broker still sees {proxy.open_connections} open "
                    "connection(s) from the worker. Close the connection itself "
                    "(await connection.close()); closing the channel is not enough."
                ),
            )

    @pytest.mark.points(1)
    async def test_stopped_worker_takes_no_more_work(self, proxy, amqp, names) -> None:
        queue = names.queue()
        worker, record = recording_worker(proxy.url, queue, work=SHORT)
        async with stopping(worker):
            await start(worker)
            await stop(worker, STOP)
            await publish(amqp, queue, {"n": 1})
            await holds_for(
                lambda: record.started == 0,
                seconds=0.8,
                message="Step 3: a task put after stop() was still handled: the worker kept "
                "consuming. stop() must close the connection to RabbitMQ.",
            )
        require(
            await waiting(amqp, queue) == 1,
            "Step 3: a task put after stop() should wait in the queue for the next worker.",
        )

    @pytest.mark.points(2)
    async def test_capacity_one_runs_one_task_at_a_time(self, proxy, amqp, names) -> None:
        await self._check_capacity(proxy, amqp, names, capacity=1, works=[WORK] * 5)

    @pytest.mark.points(3)
    async def test_capacity_is_reached_but_never_exceeded(self, proxy, amqp, names) -> None:
        # One long task and many short ones: the short ones finish (and are acked) while the
        # long one still runs, and the broker must not take those acks for the long one's.
        await self._check_capacity(proxy, amqp, names, capacity=3, works=[0.8] + [WORK] * 11)

    async def _check_capacity(self, proxy, amqp, names, capacity: int, works: list[float]) -> None:
        queue = names.queue()
        count = len(works)
        await publish(amqp, queue, *({"n": n, "work": w} for n, w in enumerate(works)))
        worker, record = recording_worker(proxy.url, queue, capacity=capacity)
        async with stopping(worker):
            await start(worker)
            deadline = 3 + 3 * sum(works) / capacity
            await eventually(
                lambda: len(record.done) >= count or record.peak > capacity or record.check(),
                timeout=deadline,
                message=lambda: progress(
                    record, f"Step 4: with capacity={capacity}, {count} tasks waited", count,
                    deadline,
                ),
            )  # fmt: skip

        def too_many() -> str:
            head = (
                f"Step 4: at most capacity={capacity} handlers may run at once, but "
                f"{record.peak} ran together"
            )
            if record.acked_before_start:
                return (
                    f"{head}, because _worker acknowledged messages before their handler ran: "
                    "the broker counts them as done and sends more. Ack after the handler "
                    "returned (Step 1)."
                )
            if record.over_capacity_after == 0:
                return (
                    f"{head} before any of them had finished: the broker handed this worker "
                    "more tasks than capacity. Set channel.set_qos(prefetch_count=capacity) on "
                    "the channel you consume from, before queue.consume()."
                )
            return (
                f"{head} once a handler had finished: the broker counted more tasks as done "
                "than had finished. Ack only the message whose handler finished: msg.ack(), "
                "not msg.ack(multiple=True), which also acknowledges every earlier message of "
                "the channel, those still running included."
            )

        require(record.peak <= capacity, too_many)
        require(
            record.peak == capacity,
            f"Step 4: capacity={capacity} lets {capacity} handlers run at once, and {count} tasks "
            f"were waiting, but at most {record.peak} ran together. Pass "
            "prefetch_count=capacity (not 1), and do not make handlers wait for each other "
            "(for example with a lock).",
        )
        require(not record.handled_twice(), lambda: handled_twice(record, "Step 4"))

    @pytest.mark.points(1)
    async def test_a_busy_worker_leaves_the_other_tasks_in_the_queue(
        self, proxy, amqp, names
    ) -> None:
        queue = names.queue()
        await publish(amqp, queue, *tasks(6, gate=True))
        worker, record = recording_worker(proxy.url, queue, capacity=2)
        async with stopping(worker):
            try:
                await start(worker)
                await eventually(
                    lambda: record.running >= 2 or record.check(),
                    timeout=5,
                    message=lambda: (
                        f"Step 4: 6 tasks waited and capacity=2, but {record.running} "
                        f"handler(s) started. Pass prefetch_count=capacity.{record.trouble()}"
                    ),
                )
                require(
                    record.peak == 2,
                    f"Step 4: 6 tasks waited and capacity=2, but {record.peak} handlers started "
                    "at once. Pass prefetch_count=capacity, and ack only after the handler.",
                )
                left: list[int] = []

                async def four_left() -> bool:
                    left.append(await waiting(amqp, queue))
                    return left[-1] == 4

                def hoarded() -> str:
                    took = 4 - left[-1]
                    what = (
                        "Your worker took them all, and keeps them waiting in memory"
                        if left[-1] == 0
                        else f"Your worker took {took} of them, which it cannot run yet"
                    )
                    return (
                        f"Step 4: while 2 tasks run (capacity=2), the other 4 should stay in the "
                        f"queue, where any free worker can take them; the queue holds "
                        f"{left[-1]}. {what}. Let the broker hand out at most capacity "
                        "messages at a time: channel.set_qos(prefetch_count=capacity)."
                    )

                await eventually(four_left, timeout=3, interval=0.1, message=hoarded)
            finally:
                record.open_all_gates()
            await eventually(
                lambda: len(record.done) == 6,
                timeout=5,
                message=lambda: progress(record, "Step 4: once the 2 running tasks ended", 6, 5),
            )

    # ----------------------------------------------------------------------- starred: Step 5

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.timeout(60)  # the waits below add up to more than the default 30 s
    @pytest.mark.points(3)
    async def test_cancel(self, proxy, amqp, names) -> None:
        queue = names.queue()
        # Each task runs until the test opens its gate: nothing here depends on timing.
        await publish(amqp, queue, *tasks(4, gate=True))
        worker, record = recording_worker(proxy.url, queue, capacity=2)
        label = "Step 5: worker.stop()"
        stopping_ = None
        try:
            await start(worker)
            await eventually(
                lambda: record.running >= 2 or record.check(),
                timeout=5,
                message=lambda: f"Step 4: 2 handlers should run (capacity=2); {record.running} do.",
            )
            require(
                record.peak == 2,
                f"Step 4: 4 tasks waited and capacity=2, but {record.peak} handlers started at "
                "once (see the Step 4 tests).",
            )
            _stopped.append(worker)
            stopping_ = asyncio.ensure_future(worker.stop())

            async def consumer_gone() -> bool:
                return stopping_.done() or (await queue_state(amqp, queue, "Step 5"))[1] == 0

            async def check_still_stopping(running: int) -> None:
                """stop() must not return (or cancel anything) while handlers still run."""
                if record.cancelled == 0 and not stopping_.done():
                    return
                if stopping_.done() and stopping_.exception() is not None:
                    await call(stopping_, label)
                require(
                    record.cancelled == 0,
                    f"Step 5: stop() cancelled {record.cancelled} running handler(s). Let them "
                    "finish before closing the connection: keep the running _worker tasks "
                    "(asyncio.current_task() in _worker) and await them in stop().",
                )
                fail(
                    f"Step 5: stop() returned while {running} handler(s) were still running. "
                    "Wait for them (await the running _worker tasks) before closing the "
                    "connection."
                )

            # A stop() that cancels the consumer first: the broker sends nothing more.
            await poll(consumer_gone, timeout=2, interval=0.05)
            await check_still_stopping(running=2)
            record.gate(0).set()  # one running task finishes: its slot is free
            await poll(
                lambda: 0 in record.done_numbers() or record.cancelled > 0 or stopping_.done(),
                timeout=3,
            )
            await check_still_stopping(running=2 - len(record.done))
            require(
                0 in record.done_numbers(),
                "Step 5: a running handler could not finish while stop() waited.",
            )
            await poll(lambda: record.started > 2, timeout=QUIET)
            require(
                record.started == 2,
                f"Step 5: {record.started - 2} new handler(s) started after stop() began. Stop "
                "taking messages first: cancel the consumer (await queue.cancel(consumer_tag)), "
                "then wait for the running handlers, then close the connection.",
            )
            await check_still_stopping(running=1)
            record.gate(1).set()
            await call(
                stopping_, label, "Both running handlers have finished: stop() should return."
            )
        finally:
            record.open_all_gates()
            if stopping_ is not None and not stopping_.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stopping_, 5)
            _stopped.clear()
        require(
            record.cancelled == 0,
            f"Step 5: stop() cancelled {record.cancelled} running handler(s). Let them finish.",
        )
        require(
            record.done_numbers() == {0, 1},
            f"Step 5: the 2 running tasks should finish during stop(); {record.done!r} did.",
        )
        await assert_not_back(
            amqp,
            queue,
            lambda back: (
                f"Step 5: the 2 tasks that were running finished, but {back} came back to the "
                "queue after stop(): ack them before closing the connection."
            ),
            expected=2,
        )

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.timeout(60)  # the waits below add up to more than the default 30 s
    @pytest.mark.points(2)
    async def test_failing_tasks_are_retried_but_not_forever(self, proxy, amqp, names) -> None:
        queue = names.queue()
        side_queues(names, queue)
        sent = [*tasks(4, work=SHORT, fail="first"), {"n": 4, "work": SHORT, "fail": "always"}]
        await publish(amqp, queue, *sent)
        worker, record = recording_worker(proxy.url, queue, capacity=2)
        flaky = {0, 1, 2, 3}

        def not_retried() -> str:
            again = [n for n in flaky if record.tried(n) >= 2]
            stuck = [n for n in flaky if record.tried(n) and not record.messages[n][-1].processed]
            why = (
                f"{len(stuck)} are stuck unacknowledged: settle a failed message"
                if stuck
                else "the others were dropped: give a failed task another try"
            )
            return (
                f"Step 5: the first try of each of 4 tasks raised, as real handlers sometimes "
                f"do; {len(again)} of them were tried again and {len(record.done_numbers())} "
                f"finished within 10 s, and {why}. `await msg.nack(requeue=not "
                "msg.redelivered)` requeues a task the first time it fails, and drops it the "
                "second time (note that `async with msg.process()` drops a failed one at once)."
                f"{record.trouble()}"
            )

        async with stopping(worker):
            await start(worker)
            await eventually(
                lambda: flaky <= record.done_numbers() or record.tried(4) > MAX_TRIES
                or record.check(),
                timeout=10,
                message=not_retried,
            )  # fmt: skip

            # Watch the task that always fails until nobody has tried it for a while.
            def given_up() -> bool:
                tries = record.tries.get(4, [])
                return len(tries) > MAX_TRIES or (
                    bool(tries) and time.monotonic() - tries[-1] > RETRY_QUIET
                )

            await poll(given_up, timeout=15, interval=0.05)
            require(record.tried(4) <= MAX_TRIES, lambda: endless(record, 4, "Step 5"))
            await stop(worker, STOP)
        await assert_not_back(
            amqp,
            queue,
            lambda back: (
                f"Step 5: every task was settled, but {back} came back to the queue after "
                "stop(): ack a message once its handler succeeds, and drop (or park elsewhere) "
                "one that failed its last try."
            ),
        )

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.points(1)
    @pytest.mark.parametrize("cut", ["clean", "half-open"])
    @pytest.mark.timeout(60)
    async def test_worker_survives_a_broken_connection(self, cut, proxy, amqp, names) -> None:
        queue = names.queue()
        worker, record = recording_worker(proxy.url, queue, work=SHORT)
        how = {
            "clean": "the network dropped the worker's connection",
            "half-open": "a network partition cut the worker's connection (half-open: the "
            "broker kept its end open, and still counts the old consumer)",
        }[cut]
        async with stopping(worker):
            await start(worker)
            await publish(amqp, queue, {"n": 0}, {"n": 1})
            await eventually(
                lambda: len(record.done) >= 2 or record.check(),
                timeout=5,
                message=lambda: progress(record, "Step 2: 2 tasks were put", 2, 5),
            )
            seen = proxy.connections_seen
            proxy.cut(half_open=cut == "half-open")
            await publish(amqp, queue, {"n": 2}, {"n": 3}, {"n": 4})
            after = {2, 3, 4}
            # With a half-open cut the broker may still hand one task to the old consumer.
            back = await poll(lambda: len(after & record.done_numbers()) >= 2, timeout=20)
            if not back:
                consumers = (await queue_state(amqp, queue, "Step 5"))[1]
                if proxy.connections_seen == seen:
                    why = (
                        "It never connected again. Connect with aio_pika.connect_robust(): it "
                        "reconnects by itself and restores the channel, its prefetch and the "
                        "consumer (aio_pika.connect() gives up)."
                    )
                elif cut == "half-open" and consumers >= 2:
                    why = (
                        "It connected again and consumes, but the broker handed the tasks to "
                        "the old connection's consumer, which it still believes alive: with no "
                        "prefetch limit it gives that consumer every task. "
                        "channel.set_qos(prefetch_count=capacity) bounds what a dead consumer "
                        "can hold back."
                    )
                elif cut == "half-open" and consumers == 1:
                    why = (
                        "It connected again, but does not consume: the queue's only consumer is "
                        "the old one, which the broker keeps until its heartbeat gives up on "
                        "it (a minute or more). Did you consume with exclusive=True? An "
                        "exclusive consumer keeps every other one out: consume the shared "
                        "queue without it."
                    )
                else:
                    why = (
                        f"It connected again, but the queue has {consumers} consumer(s): after "
                        "a reconnect the channel, its prefetch and the consumer must come back "
                        "too (aio_pika.connect_robust() restores them)."
                    )
                fail(
                    f"Step 5: after {how}, the worker handled "
                    f"{len(after & record.done_numbers())} of the 3 tasks put afterwards within "
                    f"20 s. {why}{record.trouble()}"
                )
            proxy.release_held()  # the partition heals: the broker drops the old connection
            await eventually(
                lambda: after <= record.done_numbers(),
                timeout=10,
                message=lambda: (
                    f"Step 5: after {how} and a reconnect, the worker handled only "
                    f"{sorted(after & record.done_numbers())} of the tasks [2, 3, 4]."
                    f"{record.trouble()}"
                ),
            )

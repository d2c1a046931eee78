"""Task 1: WorkerClient and Worker (connectors/rabbit/task/rmq_worker.py).

    pytest tests/connectors/rabbit/test_rmq_worker.py -vv

Every failure names the step of the task text (connectors/rabbit/task/README.md) it checks and
what most likely went wrong. The starred tests (Step 5) are skipped until you delete their
``@pytest.mark.skip`` line.

The tests talk to a real RabbitMQ broker. Your code connects through a small proxy
(``proxy.url``), so that the tests can see its connections the way the broker sees them, and
cut them. Each test uses its own queue, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from connectors.rabbit.task.rmq_worker import Worker, WorkerClient, WorkerClientConfig, WorkerConfig
from course.checks import eventually, holds_for, step

pytestmark = [pytest.mark.task(1), pytest.mark.timeout(30)]

WORK = 0.25  # seconds of "work" in the test handlers (the lesson's handlers take 5 s)
T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


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


async def call(awaitable: Awaitable[T], label: str, hint: str = "", timeout: float = 5.0) -> T:
    """Await your code; a hang or an exception fails the test with ``label`` and ``hint``."""
    try:
        return await step(awaitable, label=label, timeout=timeout, hint=hint)
    except NotImplementedError:
        raise  # the course plugin reports which method is still a stub
    except Exception as error:
        problem = f"{label} raised {type(error).__name__}: {error}. {hint}".strip()
    pytest.fail(problem, pytrace=False)


_stopped: list[WorkerClient | Worker] = []  # what the running test has stopped itself


async def stop(thing: WorkerClient | Worker, label: str, timeout: float = 5.0) -> None:
    """Call ``thing.stop()`` as a checked step of the test."""
    await call(thing.stop(), label=label, timeout=timeout)
    _stopped.append(thing)


@contextlib.asynccontextmanager
async def stopping(*started: WorkerClient | Worker):
    """At the end of the test, stop what it started and did not stop itself.

    Quietly: the test's own verdict is the one that counts.
    """
    try:
        yield
    finally:
        for thing in started:
            if not any(thing is done for done in _stopped):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(thing.stop(), timeout=5)
        _stopped.clear()


async def queue_state(amqp: aio_pika.abc.AbstractConnection, queue: str) -> tuple[int, int]:
    """(messages waiting, consumers) of ``queue``, as the broker reports them.

    Declares the queue the plain way, ``channel.declare_queue(queue)``, as any program may.
    """
    channel = await amqp.channel()
    try:
        declared = await channel.declare_queue(queue)
    except aio_pika.exceptions.ChannelPreconditionFailed as error:
        problem = (
            f"Step 2 / Client step 1: the queue {queue!r} exists with other settings than the "
            f"defaults ({error}). "
            "Declare it with channel.declare_queue(queue_name) and no more arguments "
            "(no durable=, auto_delete=, arguments=): other programs, and these tests, declare "
            "it that way."
        )
    except aio_pika.exceptions.ChannelClosed as error:
        problem = (
            f"Step 2 / Client step 1: the tests cannot use the queue {queue!r} ({error}). "
            "Did you declare it "
            "exclusive=True? A work queue is shared: declare it with "
            "channel.declare_queue(queue_name)."
        )
    else:
        with contextlib.suppress(Exception):
            await channel.close()
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    pytest.fail(problem, pytrace=False)


async def waiting(amqp: aio_pika.abc.AbstractConnection, queue: str) -> int:
    return (await queue_state(amqp, queue))[0]


async def publish(amqp: aio_pika.abc.AbstractConnection, queue: str, *tasks: dict) -> None:
    """Put tasks into the queue the plain way; returns once the broker has them."""
    await queue_state(amqp, queue)
    channel = await amqp.channel()
    try:
        for task in tasks:
            message = aio_pika.Message(json.dumps(task).encode())
            await channel.default_exchange.publish(message, routing_key=queue)
    finally:
        await channel.close()


async def take(
    amqp: aio_pika.abc.AbstractConnection, queue: str, count: int, timeout: float = 5.0
) -> list[AbstractIncomingMessage]:
    """Take up to ``count`` messages out of the queue, waiting at most ``timeout`` seconds."""
    await queue_state(amqp, queue)
    channel = await amqp.channel()
    declared = await channel.declare_queue(queue)
    got: list[AbstractIncomingMessage] = []

    async def more() -> bool:
        message = await declared.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return len(got) >= count

    with contextlib.suppress(pytest.fail.Exception):
        await eventually(more, timeout=timeout, message="", interval=0.05)
    await channel.close()
    return got


def decoded(body: bytes) -> object:
    """The JSON in ``body``, or the raw bytes when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return body


def tasks(count: int) -> list[dict]:
    return [{"type": "event", "n": n} for n in range(count)]


class Record:
    """What the test handler saw: how many tasks started, ran at once, finished, were cancelled."""

    def __init__(
        self, work: float = WORK, gate: asyncio.Event | None = None, fail_first: bool = False
    ) -> None:
        self.work = work  # seconds each task takes
        self.gate = gate  # if set, tasks run until the test opens the gate instead
        self.fail_first = fail_first  # if set, the first try of every task raises
        self.started = 0
        self.running = 0
        self.peak = 0
        self.cancelled = 0
        self.done: list[dict] = []  # the tasks that finished, in order
        self.failed: list[dict] = []

    async def handle(self, msg: AbstractIncomingMessage) -> None:
        task = json.loads(msg.body)
        self.started += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                await asyncio.wait_for(self.gate.wait(), timeout=10)
            else:
                await asyncio.sleep(task.get("work", self.work))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if self.fail_first and task not in self.failed:
            self.failed.append(task)
            raise RuntimeError("the handler failed (on purpose, for the test)")
        self.done.append(task)


def recording_worker(
    url: str, queue: str, capacity: int = 1, record: Record | None = None
) -> tuple[Worker, Record]:
    """A Worker subclass, as a student would write one, whose handler reports to a Record."""
    seen = record or Record()

    class RecordingWorker(Worker):
        async def handler(self, msg: AbstractIncomingMessage) -> None:
            await seen.handle(msg)

    config = WorkerConfig(rabbit_url=url, queue_name=queue, capacity=capacity)
    return RecordingWorker(config), seen


def client_for(url: str, queue: str) -> WorkerClient:
    return WorkerClient(WorkerClientConfig(rabbit_url=url, queue_name=queue))


START_HINT = (
    "start() must connect, declare the queue, register the consumer and return; it must not "
    "wait for messages (no `await asyncio.Future()` or endless loop in it)."
)
NO_ACK_HINT = (
    "With capacity=1 the broker sends the next message only once the previous one is "
    "acknowledged: does _worker `await msg.ack()` after the handler (Step 1)?"
)


# --------------------------------------------------------------------------- WorkerClient


class TestWorkerClient:
    @pytest.mark.points(2)
    async def test_put_sends_the_dict_as_json(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await queue_state(amqp, queue)  # the queue exists: this test checks only what put() sends
        client = client_for(proxy.url, queue)
        task = {"type": "event", "id": 7, "tags": ["a", "b"]}
        async with stopping(client):
            await call(client.put(task), label="Client step 1: client.put({...})")
            got = await take(amqp, queue, 1)
        assert got, (
            f"Client step 1: put() returned, but nothing arrived in the queue {queue!r}. Publish "
            "through channel.default_exchange with routing_key=config.queue_name: the default "
            "exchange delivers to the queue of that name."
        )
        body = got[0].body
        try:
            decoded = json.loads(body)
        except ValueError:
            pytest.fail(
                f"Client step 1: the message body is not JSON: {body[:80]!r}. "
                "Send json.dumps(data).encode(), not str(data).",
                pytrace=False,
            )
        assert decoded == task, (
            f"Client step 1: the body decodes to {decoded!r}, but the dict put() got was {task!r}."
        )

    @pytest.mark.points(1)
    async def test_put_declares_the_queue(self, proxy, amqp, names) -> None:
        queue = names.queue()  # nobody has declared it yet: no worker has ever started
        client = client_for(proxy.url, queue)
        async with stopping(client):
            await call(client.put({"type": "event"}), label="Client step 1: client.put({...})")
            got = await take(amqp, queue, 1)
        assert got, (
            f"Client step 1: the queue {queue!r} did not exist before put(), and the task never "
            "arrived in it. The default exchange drops a message when no queue has that name: "
            "declare the queue in put() (channel.declare_queue(config.queue_name)) before "
            "publishing, so that tasks wait for a worker that starts later."
        )

    @pytest.mark.points(1)
    async def test_puts_keep_their_order(self, proxy, amqp, names) -> None:
        queue = names.queue()
        client = client_for(proxy.url, queue)
        sent = tasks(5)
        async with stopping(client):
            for task in sent:
                await call(client.put(task), label="Client step 1: client.put({...})")
            got = await take(amqp, queue, 5)
        received = [decoded(message.body) for message in got]
        assert received == sent, (
            f"Client step 1: five put() calls should leave five tasks in the queue in the same "
            f"order; found {received!r}."
        )

    @pytest.mark.points(2)
    async def test_stop_closes_the_client_connection(self, proxy, amqp, names) -> None:
        queue = names.queue()
        client = client_for(proxy.url, queue)
        async with stopping(client):
            await call(client.put({"n": 1}), label="Client step 1: client.put({...})")
            await call(client.put({"n": 2}), label="Client step 1: client.put({...})")
            await stop(client, label="Client step 2: client.stop()")
            await eventually(
                lambda: proxy.open_connections == 0,
                timeout=5,
                message=lambda: (
                    f"Client step 2: after client.stop() the broker still sees "
                    f"{proxy.open_connections} open connection(s) from the client. Open one "
                    "connection, the first time put() runs, reuse it for later puts, and close "
                    "it in stop() (await connection.close(); closing the channel is not enough)."
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
            label="Client step 2: leaving `async with WorkerClient(config)` without any put()",
            hint="__aexit__ calls stop(), and stop() must also work when put() never opened a "
            "connection: close it only if there is one.",
        )


# --------------------------------------------------------------------------- Worker


class TestWorker:
    @pytest.mark.points(2)
    async def test_worker_runs_the_handler_and_acks(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, {"n": 1})
        channel = await amqp.channel()
        message = await (await channel.declare_queue(queue)).get(timeout=5)
        worker, record = recording_worker(proxy.url, queue)
        await call(
            worker._worker(message),
            label="Step 1: worker._worker(message)",
            hint="(This test calls _worker directly, on a worker that was not started: it "
            "should call the handler and then acknowledge the message, nothing else.)",
        )
        assert record.done == [{"n": 1}], (
            "Step 1: worker._worker(message) returned, but the handler did not run. Call it, and "
            "await it: `await self.handler(msg)`."
        )
        await channel.close()  # a message that was not acked now goes back to the queue
        await _assert_not_back(
            amqp,
            queue,
            "Step 1: the handler succeeded, but the message went back to the queue: _worker did "
            "not acknowledge it. After the handler returns, `await msg.ack()` (or use "
            "`async with msg.process(...)`).",
        )

    @pytest.mark.points(2)
    async def test_start_returns_and_the_handler_gets_every_task(self, proxy, amqp, names) -> None:
        queue = names.queue()
        worker, record = recording_worker(proxy.url, queue, record=Record(work=0.05))
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            _, consumers = await queue_state(amqp, queue)
            assert consumers >= 1, (
                f"Step 2: start() returned, but the queue {queue!r} has no consumer. Register "
                "_worker as one: `await queue.consume(self._worker)`."
            )
            await publish(amqp, queue, *tasks(3))
            await eventually(
                lambda: len(record.done) == 3,
                timeout=5,
                message=lambda: (
                    f"Step 2: 3 tasks were put after start(), and the handler finished "
                    f"{len(record.done)} of them within 5 s. Is _worker the consumer, and does it "
                    f"await the handler? {NO_ACK_HINT}"
                ),
            )
        assert sorted(task["n"] for task in record.done) == [0, 1, 2], (
            f"Step 2: the handler should see each task once; it saw {record.done!r}."
        )

    @pytest.mark.points(2)
    async def test_processed_messages_are_acked(self, proxy, amqp, names) -> None:
        queue = names.queue()
        await publish(amqp, queue, *tasks(3))
        worker, record = recording_worker(proxy.url, queue, record=Record(work=0.05))
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await eventually(
                lambda: len(record.done) == 3,
                timeout=5,
                message=lambda: (
                    f"Step 1: 3 tasks waited in the queue, and the handler finished "
                    f"{len(record.done)} of them within 5 s. {NO_ACK_HINT}"
                ),
            )
            await stop(worker, label="Step 3: worker.stop()")
        await _assert_not_back(
            amqp,
            queue,
            "Step 1: the handler finished all 3 tasks, but after stop() {back} of them came back "
            "to the queue: they were never acknowledged, so the broker hands them out again. "
            "`await msg.ack()` once the handler returns.",
        )

    @pytest.mark.points(2)
    async def test_stop_closes_the_connection(self, proxy, amqp, names) -> None:
        queue = names.queue()
        worker, _ = recording_worker(proxy.url, queue)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await eventually(
                lambda: proxy.open_connections >= 1,
                timeout=5,
                message="Step 2: start() returned without opening a connection to the broker.",
            )
            await stop(worker, label="Step 3: worker.stop()")
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
        worker, record = recording_worker(proxy.url, queue, record=Record(work=0.05))
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await stop(worker, label="Step 3: worker.stop()")
            await publish(amqp, queue, {"n": 1})
            await holds_for(
                lambda: record.started == 0,
                seconds=0.8,
                message="Step 3: a task put after stop() was still handled: the worker kept "
                "consuming. stop() must close the connection to RabbitMQ.",
            )
        assert await waiting(amqp, queue) == 1, (
            "Step 3: a task put after stop() should wait in the queue for the next worker."
        )

    @pytest.mark.points(2)
    async def test_capacity_one_runs_one_task_at_a_time(self, proxy, amqp, names) -> None:
        await self._check_capacity(proxy, amqp, names, capacity=1, count=5)

    @pytest.mark.points(3)
    async def test_capacity_is_reached_but_never_exceeded(self, proxy, amqp, names) -> None:
        await self._check_capacity(proxy, amqp, names, capacity=3, count=12)

    async def _check_capacity(self, proxy, amqp, names, capacity: int, count: int) -> None:
        queue = names.queue()
        await publish(amqp, queue, *tasks(count))  # a burst, waiting before the worker starts
        worker, record = recording_worker(proxy.url, queue, capacity=capacity)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            deadline = 3 + 3 * count * WORK / capacity
            await eventually(
                lambda: len(record.done) == count or record.peak > capacity,
                timeout=deadline,
                message=lambda: (
                    f"Step 4: with capacity={capacity}, the handler finished {len(record.done)} "
                    f"of {count} tasks within {deadline:g} s ({record.peak} at most ran "
                    f"together). {NO_ACK_HINT if capacity == 1 else ''}"
                ).strip(),
            )
        assert record.peak <= capacity, (
            f"Step 4: at most capacity={capacity} handlers may run at once, but {record.peak} ran "
            "together. Did you set channel.set_qos(prefetch_count=capacity) on the channel you "
            "consume from? (Acking before the handler finishes also lets more in.)"
        )
        assert record.peak == capacity, (
            f"Step 4: capacity={capacity} lets {capacity} handlers run at once, and {count} tasks "
            f"were waiting, but at most {record.peak} ran together. Pass "
            "prefetch_count=capacity (not 1), and do not make handlers wait for each other "
            "(for example with a lock)."
        )

    @pytest.mark.points(1)
    async def test_a_busy_worker_leaves_the_other_tasks_in_the_queue(
        self, proxy, amqp, names
    ) -> None:
        queue = names.queue()
        await publish(amqp, queue, *tasks(6))
        record = Record(gate=asyncio.Event())
        worker, _ = recording_worker(proxy.url, queue, capacity=2, record=record)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await eventually(
                lambda: record.running == 2,
                timeout=5,
                message=lambda: (
                    f"Step 4: 6 tasks waited and capacity=2, but {record.running} handler(s) "
                    "started. Pass prefetch_count=capacity."
                ),
            )
            left: list[int] = []

            async def four_left() -> bool:
                left.append(await waiting(amqp, queue))
                return left[-1] == 4

            await eventually(
                four_left,
                timeout=3,
                interval=0.1,
                message=lambda: (
                    f"Step 4: while 2 tasks run (capacity=2), the other 4 should stay in the "
                    f"queue, where any free worker can take them; the queue holds {left[-1]}. "
                    "Your worker took them all and keeps them waiting in memory. Let the broker "
                    "hand out at most capacity messages at a time: "
                    "channel.set_qos(prefetch_count=capacity)."
                ),
            )
            record.gate.set()
            await eventually(
                lambda: len(record.done) == 6,
                timeout=5,
                message=lambda: f"Step 4: the handler finished {len(record.done)} of 6 tasks.",
            )

    # ----------------------------------------------------------------------- starred: Step 5

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.points(3)
    async def test_cancel(self, proxy, amqp, names) -> None:
        queue = names.queue()
        # The first task is short and the second long: when the first is done, a worker that
        # still consumes would start the third while stop() waits for the second.
        works = [0.2, 0.8, 0.2, 0.2]
        await publish(amqp, queue, *({"n": n, "work": work} for n, work in enumerate(works)))
        record = Record()
        worker, _ = recording_worker(proxy.url, queue, capacity=2, record=record)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await eventually(
                lambda: record.running == 2,
                timeout=5,
                message=lambda: f"Step 4: 2 handlers should run (capacity=2); {record.running} do.",
            )
            await stop(worker, label="Step 5: worker.stop()")
            finished = len(record.done)
        assert record.started == 2, (
            f"Step 5: {record.started - 2} new handler(s) started after stop() began. Stop taking "
            "messages first: cancel the consumer (await queue.cancel(consumer_tag)), then wait "
            "for the running handlers, then close the connection."
        )
        assert record.cancelled == 0, (
            f"Step 5: stop() cancelled {record.cancelled} running handler(s). Let them finish "
            "before closing the connection: keep the running _worker tasks (asyncio.current_task()"
            " in _worker) and await them in stop()."
        )
        assert finished == 2, (
            f"Step 5: stop() returned while {2 - finished} handler(s) were still running. Wait "
            "for them before returning."
        )
        await _assert_not_back(
            amqp,
            queue,
            "Step 5: the 2 tasks that were running finished, but {back} came back to the queue "
            "after stop(): ack them before closing the connection.",
            expected=2,
        )

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.points(2)
    async def test_a_failing_handler_does_not_lose_its_task(self, proxy, amqp, names) -> None:
        queue = names.queue()
        for side_queue in (f"{queue}.retry", f"{queue}.dead"):  # in case a solution makes them
            names.also_delete_queue(side_queue)
        await publish(amqp, queue, *tasks(2))
        record = Record(work=0.05, fail_first=True)
        worker, _ = recording_worker(proxy.url, queue, record=record)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await eventually(
                lambda: len(record.done) == 2,
                timeout=10,
                message=lambda: (
                    f"Step 5: the first try of each of 2 tasks raised, as real handlers sometimes "
                    f"do; {len(record.done)} of them were tried again and finished within 10 s. "
                    "The others were lost, or are stuck unacknowledged. Ack only when the handler "
                    "succeeded; when it raises, give the message back: "
                    "`await msg.nack(requeue=True)` (note that `async with msg.process()` "
                    "drops it unless you pass requeue=True)."
                ),
            )
            await stop(worker, label="Step 3: worker.stop()")
        await _assert_not_back(
            amqp,
            queue,
            "Step 5: both tasks finished on their second try, but {back} came back to the queue "
            "after stop(): ack a message once its handler succeeds.",
        )

    @pytest.mark.stretch
    @pytest.mark.skip(reason="Step 5 [*]: delete this skip line to try the starred test")
    @pytest.mark.points(2)
    async def test_worker_survives_a_broken_connection(self, proxy, amqp, names) -> None:
        queue = names.queue()
        record = Record(work=0.05)
        worker, _ = recording_worker(proxy.url, queue, record=record)
        async with stopping(worker):
            await call(worker.start(), label="Step 2: worker.start()", hint=START_HINT)
            await publish(amqp, queue, {"n": 0}, {"n": 1})
            await eventually(
                lambda: len(record.done) == 2,
                timeout=5,
                message=lambda: f"Step 2: the handler finished {len(record.done)} of 2 tasks.",
            )
            proxy.cut()  # the network drops every connection of the worker
            await publish(amqp, queue, {"n": 2}, {"n": 3})
            await eventually(
                lambda: {2, 3} <= {task["n"] for task in record.done},
                timeout=20,
                interval=0.1,
                message=lambda: (
                    "Step 5: after the connection to the broker was cut, the worker did not "
                    f"handle the 2 tasks put afterwards within 20 s (it finished "
                    f"{len(record.done) - 2}). Connect with aio_pika.connect_robust(): it "
                    "reconnects by itself and restores the channel, its prefetch and the "
                    "consumer (aio_pika.connect() gives up)."
                ),
            )


async def _assert_not_back(
    amqp: aio_pika.abc.AbstractConnection, queue: str, message: str, expected: int = 0
) -> None:
    """Check, for a short while, that no unacknowledged message returns to the queue."""
    counts: list[int] = []

    async def unchanged() -> bool:
        counts.append(await waiting(amqp, queue))
        return counts[-1] == expected

    await holds_for(
        unchanged,
        seconds=0.5,
        interval=0.1,
        message=lambda: message.format(back=counts[-1] - expected),
    )

"""The reference Task 1 solution's own promises, beyond what the graded suite asks of students.

Bounded retries with a queue per delay and the dead-letter queue, handlers that settle their own
message, graceful stop with a grace period, requeueing of work that never started, reconnecting
after a network failure, the quorum option, config validation, bounded failure on an unreachable
broker, passwords kept out of reprs and logs, and the message format (JSON, persistent, publisher
confirms) on a durable queue. Faults are real: a TCP proxy between the code and the broker cuts
or refuses connections, and the broker itself refuses publishes to a full queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from course import impl
from course.checks import eventually, holds_for

ref = impl.load(impl.REFERENCE_DIR, "rmq_worker")

pytestmark = pytest.mark.timeout(30)


class Record:
    """What a test handler saw. Tasks may say how long they take ({"work": s}) or fail."""

    def __init__(self, work: float = 0.05, fail: int = 0, gate: asyncio.Event | None = None):
        # fail: how many first tries of each task raise (a task may say {"fail": n} instead)
        self.work, self.fail, self.gate = work, fail, gate
        self.started = self.running = self.peak = self.cancelled = 0
        self.tries: dict[str, list[float]] = {}  # task id -> when each try started
        self.done: list[dict] = []

    async def handle(self, msg: AbstractIncomingMessage) -> None:
        task = json.loads(msg.body)
        key = str(task.get("n"))
        self.tries.setdefault(key, []).append(time.monotonic())
        self.started += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(task.get("work", self.work))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if len(self.tries[key]) <= task.get("fail", self.fail):
            raise ValueError(f"boom on try {len(self.tries[key])}")
        self.done.append(task)


def make_worker(url: str, queue: str, record: Record, **settings) -> ref.Worker:
    class RecordingWorker(ref.Worker):
        async def handler(self, msg: AbstractIncomingMessage) -> None:
            await record.handle(msg)

    return RecordingWorker(ref.WorkerConfig(rabbit_url=url, queue_name=queue, **settings))


@contextlib.asynccontextmanager
async def running(worker: ref.Worker) -> AsyncIterator[ref.Worker]:
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def publish(amqp, queue: str, *tasks: dict, **properties) -> None:
    """Publish tasks to the work queue, declared as the contract says: durable."""
    channel = await amqp.channel()
    await channel.declare_queue(queue, durable=True)
    for task in tasks:
        body = json.dumps(task).encode()
        await channel.default_exchange.publish(
            aio_pika.Message(body, **properties), routing_key=queue
        )
    await channel.close()


async def depth(amqp, queue: str) -> int:
    """Messages waiting in ``queue`` (0 if it does not exist)."""
    channel = await amqp.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return 0
    await channel.close()
    return declared.declaration_result.message_count or 0


async def get_one(amqp, queue: str, timeout: float = 5.0) -> AbstractIncomingMessage:
    """Take one message from ``queue``, waiting for the queue and the message to exist."""
    got: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        channel = await amqp.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        message = await declared.get(no_ack=True, fail=False)
        await channel.close()
        if message is not None:
            got.append(message)
        return bool(got)

    await eventually(arrived, timeout=timeout, interval=0.05, message=f"nothing came to {queue}")
    return got[0]


def side_queues(names, queue: str, *delays: float) -> tuple[list[str], str]:
    """The retry queues (one per delay, in seconds) and the dead queue, deleted after the test."""
    retries = [names.also_delete_queue(f"{queue}.retry.{round(d * 1000)}ms") for d in delays]
    return retries, names.also_delete_queue(f"{queue}.dead")


# --------------------------------------------------------------------------- the client


async def test_put_sends_persistent_json_with_an_id(amqp, names, rabbitmq_url) -> None:
    queue = names.queue()
    task = {"type": "event", "text": "héllo ✓", "n": [1, 2]}
    async with ref.WorkerClient(ref.WorkerClientConfig(rabbitmq_url, queue)) as client:
        await client.put(task)
    message = await get_one(amqp, queue)
    assert json.loads(message.body) == task
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id and message.timestamp is not None
    assert (message.exchange, message.routing_key) == ("", queue)


async def test_put_raises_when_the_broker_refuses_the_task(amqp, names, rabbitmq_url) -> None:
    """Publisher confirms: a task the broker nacks is an error, not a silent loss."""
    queue = names.queue()
    client = ref.WorkerClient(ref.WorkerClientConfig(rabbitmq_url, queue))
    async with client:
        await client.put({"n": 0})  # connects and declares the queue: durable, no arguments
        channel = await amqp.channel()
        await channel.queue_delete(queue)
        # The same name, now a queue that refuses publishes once it holds one message.
        arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
        await channel.declare_queue(queue, durable=True, arguments=arguments)
        await client.put({"n": 1})
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await client.put({"n": 2})
        await channel.close()
    assert await depth(amqp, queue) == 1


async def test_put_declares_again_a_queue_deleted_meanwhile(amqp, names, rabbitmq_url) -> None:
    queue = names.queue()
    async with ref.WorkerClient(ref.WorkerClientConfig(rabbitmq_url, queue)) as client:
        await client.put({"n": 0})
        channel = await amqp.channel()
        await channel.queue_delete(queue)
        await channel.close()
        await client.put({"n": 1})  # returned as unroutable, then declared and sent again
    assert json.loads((await get_one(amqp, queue)).body) == {"n": 1}


async def test_client_connects_lazily_and_stops_safely(proxy, names) -> None:
    client = ref.WorkerClient(ref.WorkerClientConfig(proxy.url, names.queue()))
    await client.stop()  # before any put
    async with client:
        assert proxy.open_connections == 0, "no connection before the first put"
        await client.put({"n": 1})
        await client.put({"n": 2})
        assert proxy.open_connections == 1, "one connection, reused"
    assert await proxy.wait_open(0)
    await client.stop()  # twice
    with pytest.raises(TypeError):
        await client.put(["not", "a", "dict"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- capacity


async def test_capacity_is_reached_and_never_exceeded_under_a_10x_burst(
    amqp, names, rabbitmq_url
) -> None:
    queue = names.queue()
    await publish(amqp, queue, *({"n": n, "work": 0.1} for n in range(30)))
    record = Record()
    async with running(make_worker(rabbitmq_url, queue, record, capacity=3)):
        await eventually(lambda: len(record.done) == 30, timeout=15, message="not all done")
    assert record.peak == 3


# --------------------------------------------------------------------------- failures


async def test_a_failing_task_is_retried_with_a_delay_then_parked(
    amqp, names, rabbitmq_url, caplog
) -> None:
    queue = names.queue()
    retries, dead = side_queues(names, queue, 0.3, 0.6)
    record = Record(fail=99)
    await publish(amqp, queue, {"n": 1}, message_id="task-1")
    worker = make_worker(rabbitmq_url, queue, record, max_retries=2, retry_delay=0.3)
    with caplog.at_level(logging.WARNING, logger=ref.__name__):
        async with running(worker):
            await eventually(lambda: len(record.tries.get("1", ())) == 3, timeout=10, message="")
            parked = await get_one(amqp, dead)
            await holds_for(
                lambda: len(record.tries["1"]) == 3, seconds=0.6, message="tried again after 3"
            )
    tries = record.tries["1"]
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.55, f"retries 0.3 s, then 0.6 s apart: {gaps}"
    headers = parked.headers
    assert "ValueError: boom on try 3" in headers["x-error"]
    assert headers["x-error-type"] == "ValueError"
    assert headers["x-retry-count"] == 2
    assert headers["x-original-queue"] == queue
    assert json.loads(parked.body) == {"n": 1} and parked.message_id == "task-1"
    assert await depth(amqp, queue) == 0
    assert [await depth(amqp, retry) for retry in retries] == [0, 0]
    logged = [r.getMessage() for r in caplog.records]
    assert any(queue in line and "task-1" in line and "parked" in line for line in logged)
    assert sum(queue in line and "task-1" in line for line in logged) == 3


async def test_a_task_that_fails_once_succeeds_on_its_retry(amqp, names, rabbitmq_url) -> None:
    queue = names.queue()
    _, dead = side_queues(names, queue, 0.1)
    record = Record(fail=1)
    await publish(amqp, queue, {"n": 1}, {"n": 2})
    async with running(make_worker(rabbitmq_url, queue, record, retry_delay=0.1)):
        await eventually(lambda: len(record.done) == 2, timeout=10, message="not retried")
    assert await depth(amqp, queue) == 0 and await depth(amqp, dead) == 0


async def test_the_work_queue_is_durable_with_no_other_arguments(amqp, names, rabbitmq_url) -> None:
    """Anyone may declare the queue with channel.declare_queue(name, durable=True)."""
    queue = names.queue()
    side_queues(names, queue, 0.1)
    record = Record(fail=1)
    await publish(amqp, queue, {"n": 1})  # declared first by "another program"
    async with running(make_worker(rabbitmq_url, queue, record, retry_delay=0.1)):
        await eventually(lambda: len(record.done) == 1, timeout=10, message="not retried")
        channel = await amqp.channel()
        await channel.declare_queue(queue, durable=True)  # closes the channel if not equivalent
        await channel.close()
    fresh = names.queue()  # this time the worker declares it first
    async with running(make_worker(rabbitmq_url, fresh, Record())):
        channel = await amqp.channel()
        await channel.declare_queue(fresh, durable=True)
        await channel.close()


async def test_retries_with_different_delays_do_not_wait_behind_each_other(
    amqp, names, rabbitmq_url
) -> None:
    """A short retry queued after a long one still comes back after its own, short delay.

    Task "long" fails twice: its second retry waits 3 s. Task "short" fails once, after that:
    its retry waits 0.3 s. With one retry queue and a TTL per message, "short" would sit behind
    "long" (RabbitMQ expires messages only at the head of a queue) and come back after about 3 s.
    """
    queue = names.queue()
    side_queues(names, queue, 0.3, 3.0)
    record = Record()
    worker = make_worker(rabbitmq_url, queue, record, retry_delay=0.3, retry_backoff=10)
    async with running(worker):
        await publish(amqp, queue, {"n": "long", "fail": 2})
        await eventually(lambda: len(record.tries.get("long", ())) == 2, timeout=5, message="")
        await asyncio.sleep(0.2)  # the long retry (3 s) is now waiting in its queue
        await publish(amqp, queue, {"n": "short", "fail": 1})
        await eventually(
            lambda: len(record.tries.get("short", ())) == 2, timeout=5, message="short not retried"
        )
        first, second = record.tries["short"]
        assert second - first < 1.5, f"the 0.3 s retry took {second - first:.2f} s"
        assert len(record.tries["long"]) == 2, "the long retry came back too early"
        await eventually(lambda: len(record.done) == 2, timeout=8, message="long not retried")
    long_tries = record.tries["long"]
    assert long_tries[2] - long_tries[1] >= 2.9, "the second retry of 'long' waits 3 s"


async def test_a_handler_that_settles_its_own_message_is_left_alone(
    amqp, names, rabbitmq_url, caplog
) -> None:
    """``async with msg.process():`` in a handler: no second ack, no false warning."""
    queue = names.queue()
    done: list[int] = []

    class SelfSettling(ref.Worker):
        async def handler(self, msg: AbstractIncomingMessage) -> None:
            async with msg.process():
                done.append(json.loads(msg.body)["n"])

    await publish(amqp, queue, *({"n": n} for n in range(3)))
    worker = SelfSettling(ref.WorkerConfig(rabbitmq_url, queue, capacity=1))
    with caplog.at_level(logging.WARNING, logger=ref.__name__):
        async with running(worker):
            await eventually(lambda: len(done) == 3, timeout=5, message="not all handled")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert await depth(amqp, queue) == 0


async def test_a_quorum_work_queue(amqp, names, rabbitmq_url) -> None:
    """queue_type="quorum": the work queue and its retry queue are quorum queues."""
    queue = names.queue()
    side_queues(names, queue, 0.1)
    record = Record(fail=1)
    config = ref.WorkerClientConfig(rabbitmq_url, queue, queue_type="quorum")
    async with ref.WorkerClient(config) as client:
        await client.put({"n": 1})
    worker = make_worker(rabbitmq_url, queue, record, queue_type="quorum", retry_delay=0.1)
    async with running(worker):
        await eventually(lambda: len(record.done) == 1, timeout=10, message="not retried")
    channel = await amqp.channel()
    quorum = {"x-queue-type": "quorum"}
    back = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
    # Each declaration closes the channel if the queue exists with other arguments.
    await channel.declare_queue(queue, durable=True, arguments=quorum)
    retry = {**quorum, **back, "x-message-ttl": 100}
    await channel.declare_queue(f"{queue}.retry.100ms", durable=True, arguments=retry)
    await channel.close()


# --------------------------------------------------------------------------- stop


async def test_stop_lets_running_handlers_finish(amqp, names, rabbitmq_url) -> None:
    queue = names.queue()
    await publish(amqp, queue, *({"n": n, "work": 0.4} for n in range(4)))
    record = Record()
    worker = make_worker(rabbitmq_url, queue, record, capacity=2, grace_period=5)
    await worker.start()
    await eventually(lambda: record.running == 2, timeout=5, message="2 should run")
    await worker.stop()
    assert (record.started, record.cancelled, len(record.done)) == (2, 0, 2)
    assert await depth(amqp, queue) == 2


async def test_stop_cancels_handlers_past_the_grace_period_and_requeues(
    amqp, names, rabbitmq_url
) -> None:
    queue = names.queue()
    await publish(amqp, queue, {"n": 1, "work": 30})
    record = Record()
    worker = make_worker(rabbitmq_url, queue, record, grace_period=0.3)
    await worker.start()
    await eventually(lambda: record.running == 1, timeout=5, message="should run")
    began = time.monotonic()
    await worker.stop()
    assert time.monotonic() - began < 3
    assert record.cancelled == 1
    message = await get_one(amqp, queue)
    assert message.redelivered and json.loads(message.body)["n"] == 1


async def test_prefetched_tasks_that_never_started_go_back(amqp, names, rabbitmq_url) -> None:
    queue = names.queue()
    await publish(amqp, queue, *({"n": n, "work": 0.5} for n in range(4)))
    record = Record()
    worker = make_worker(rabbitmq_url, queue, record, capacity=1, prefetch_count=4)
    await worker.start()
    await eventually(lambda: record.running == 1, timeout=5, message="one should run")

    async def all_prefetched() -> bool:
        return await depth(amqp, queue) == 0

    await eventually(all_prefetched, timeout=5, message="the worker should hold all 4")
    await worker.stop()
    assert (record.started, len(record.done), record.cancelled) == (1, 1, 0)
    assert await depth(amqp, queue) == 3


async def test_start_and_stop_are_safe_to_misuse(proxy, names) -> None:
    worker = make_worker(proxy.url, names.queue(), Record())
    await worker.stop()  # before start
    async with worker:
        assert proxy.open_connections == 1
        with pytest.raises(RuntimeError, match="already started"):
            await worker.start()
    assert await proxy.wait_open(0)
    await worker.stop()  # twice


# --------------------------------------------------------------------------- network failures


async def test_consumption_resumes_after_the_connection_is_cut(proxy, amqp, names) -> None:
    queue = names.queue()
    await publish(amqp, queue, *({"n": n, "work": 0.2} for n in range(8)))
    record = Record()
    worker = make_worker(proxy.url, queue, record, capacity=2, reconnect_interval=0.2)
    async with running(worker):
        await eventually(lambda: len(record.done) >= 2, timeout=5, message="should start")
        proxy.cut()  # mid-task: those deliveries die with the link and come back
        await eventually(
            lambda: {t["n"] for t in record.done} == set(range(8)), timeout=15, message="lost"
        )
        assert await depth(amqp, queue) == 0
    assert record.peak <= 2


async def test_consumption_resumes_after_an_outage(proxy, amqp, names) -> None:
    queue = names.queue()
    record = Record()
    worker = make_worker(proxy.url, queue, record, reconnect_interval=0.2)
    async with running(worker):
        proxy.refuse()
        await publish(amqp, queue, {"n": 1})
        await holds_for(lambda: not record.done, seconds=1, message="handled during outage")
        proxy.accept()
        await eventually(lambda: len(record.done) == 1, timeout=10, message="not resumed")


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"capacity": 0}, "capacity must be a whole number >= 1"),
        ({"capacity": -2}, "capacity"),
        ({"capacity": 1.5}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"queue_name": ""}, "queue_name must be a non-empty string"),
        ({"queue_name": "amq.mine"}, "belong to the broker"),
        ({"rabbit_url": ""}, "rabbit_url is empty"),
        ({"rabbit_url": "localhost:5672"}, "must start with amqp://"),
        ({"rabbit_url": "http://guest:pw@localhost/"}, "must start with amqp://"),
        ({"rabbit_url": "amqp://"}, "names no host"),
        ({"rabbit_url": "amqp://guest:pw@localhost:notaport/"}, "not a valid URL"),
        ({"grace_period": -1}, "grace_period"),
        ({"max_retries": -1}, "max_retries"),
        ({"prefetch_count": 1, "capacity": 2}, "prefetch_count"),
        ({"retry_backoff": 0.5}, "retry_backoff"),
        ({"queue_type": "stream"}, "queue_type must be one of classic, quorum"),
    ],
)
def test_bad_settings_fail_at_construction(settings: dict, complaint: str) -> None:
    values = {"rabbit_url": "amqp://guest:pw@localhost:5672/", "queue_name": "jobs", **settings}
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(")):
        ref.WorkerConfig(**values)


def test_bad_client_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="queue_name"):
        ref.WorkerClientConfig("amqp://localhost/", "")
    with pytest.raises(ValueError, match="queue_type"):
        ref.WorkerClientConfig("amqp://localhost/", "jobs", queue_type="lazy")
    with pytest.raises(ValueError, match="not a valid URL") as raised:
        ref.WorkerClientConfig("amqp://guest:hunter2@localhost:99999/", "jobs")
    assert "hunter2" not in str(raised.value) and "****" in str(raised.value)


# --------------------------------------------------------------------------- no broker


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word (a hung broker)."""
    clients: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in clients:
            writer.close()
        server.close()
        await server.wait_closed()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("where", ["closed port", "silent server", "refusing proxy"])
async def test_an_unreachable_broker_fails_in_bounded_time_without_the_password(
    where: str, proxy
) -> None:
    async with silent_server() as silent_port:
        port = {"closed port": free_port(), "silent server": silent_port, "refusing proxy": 0}
        proxy.refuse()
        url = (
            proxy.url
            if where == "refusing proxy"
            else f"amqp://guest:hunter2@127.0.0.1:{port[where]}/"
        )
        password = urlsplit(url).password
        for attempt in (
            make_worker(url, "jobs", Record(), connect_timeout=1).start(),
            ref.WorkerClient(ref.WorkerClientConfig(url, "jobs", connect_timeout=1)).put({}),
        ):
            began = time.monotonic()
            with pytest.raises(ConnectionError) as raised:
                await attempt
            assert time.monotonic() - began < 3
            text = str(raised.value)
            assert "cannot connect to RabbitMQ at amqp://guest:****@127.0.0.1:" in text
            assert f":{password}@" not in text and raised.value.__cause__ is None


# --------------------------------------------------------------------------- passwords


async def test_reprs_and_logs_never_show_the_password(amqp, names, rabbitmq_url, caplog) -> None:
    secret = "s3cret-pw"
    config = ref.WorkerConfig(rabbit_url=f"amqp://guest:{secret}@localhost:5672/", queue_name="q")
    client_config = ref.WorkerClientConfig(f"amqp://guest:{secret}@localhost:5672/", "q")
    for text in (repr(config), str(config), repr(client_config), repr(ref.Worker(config))):
        assert secret not in text and "****" in text
    assert secret not in repr(ref.WorkerClient(client_config))

    # A whole life, with failures and a refused login, logged at DEBUG by every library.
    password = urlsplit(rabbitmq_url).password or ""
    queue = names.queue()
    side_queues(names, queue, 0.05)
    record = Record(fail=99)
    with caplog.at_level(logging.DEBUG):
        worker = make_worker(rabbitmq_url, queue, record, max_retries=1, retry_delay=0.05)
        async with running(worker):
            async with ref.WorkerClient(ref.WorkerClientConfig(rabbitmq_url, queue)) as client:
                await client.put({"n": 1})
            await eventually(lambda: len(record.tries.get("1", ())) == 2, timeout=5, message="")
        broker = urlsplit(rabbitmq_url)
        wrong = broker._replace(netloc=f"guest:{secret}@{broker.hostname}:{broker.port or 5672}")
        with pytest.raises(ConnectionError):  # the login is refused
            await make_worker(wrong.geturl(), queue, Record(), connect_timeout=2).start()
    logged = "\n".join(line.getMessage() for line in caplog.records) + caplog.text
    assert secret not in logged
    if password:
        assert f":{password}@" not in logged

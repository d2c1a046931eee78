"""Typical wrong Task 1 solutions, each a small edit of a correct one.

``tests/course/test_mistakes.py`` runs the graded suite (``--stretch``) on every entry and
requires a failure whose message matches ``expect``: the suite must not only reject the mistake
but name it. Most entries edit ``worker_student.py``, a plain correct solution written the way a
student would; a few edit the other correct styles (``queue.iterator()``, a semaphore with
retries counted in a header) or the reference, whose extra machinery must not hide a mistake
either. Every base must get full marks.

Each expectation also holds on RabbitMQ 4.x with the 4.3 defaults, where a transient queue is
refused outright (one sentence from ``course.refusals``) instead of being created.
"""

from __future__ import annotations

from pathlib import Path

from course.impl import REFERENCE_DIR
from course.mistakes import Mistake

MODULE = "rmq_worker"
SUITE = "tests/connectors/rabbit/test_rmq_worker.py"
HERE = Path(__file__).parent
BASES = {
    "reference": REFERENCE_DIR / "rmq_worker.py",
    "student": HERE / "worker_student.py",
    "student_iterator": HERE / "worker_student_iterator.py",
    "student_semaphore": HERE / "worker_student_semaphore.py",
}

SET_QOS = "        await channel.set_qos(prefetch_count=self.config.capacity)\n"
CONSUME = "        self.consumer_tag = await self.queue.consume(self._worker)\n"
DECLARE = "self.queue = await channel.declare_queue(self.config.queue_name, durable=True)"
ON_FAILURE = (
    "        except Exception:\n"
    '            log.exception("task failed (redelivered: %s)", msg.redelivered)\n'
    "            await msg.nack(requeue=not msg.redelivered)\n"
)
ACK = "        else:\n            await msg.ack()\n"
CLIENT_CONNECT = (
    "        async with self.lock:\n"
    "            if self.connection is None:\n"
    "                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
    "                self.channel = await self.connection.channel()\n"
    "                await self.channel.declare_queue(self.config.queue_name, durable=True)\n"
)
CLIENT_DECLARE = "await self.channel.declare_queue(self.config.queue_name, durable=True)"
CLIENT_PUBLISH = (
    "        await self.channel.default_exchange.publish(message, "
    "routing_key=self.config.queue_name)"
)
CLIENT_CLOSE = (
    "        if self.connection is not None:\n"
    "            await self.connection.close()\n"
    "            self.connection = None\n"
)
WORKER_CLOSE = (
    "            await asyncio.wait(self.tasks)\n"
    "        if self.connection is not None:\n"
    "            await self.connection.close()\n"
)
CANCEL_CONSUMER = (
    "        if self.queue is not None and self.consumer_tag is not None:\n"
    "            await self.queue.cancel(self.consumer_tag)\n"
)
WAIT_FOR_TASKS = "        if self.tasks:\n            await asyncio.wait(self.tasks)\n"

# The suite stops at the first failure (-x): the first message a student reads must name the
# mistake, not merely some message further down.
FIRST_FAILURE = ("-x",)

# How a transient queue is caught: on 3.x the broker creates it and the suite sees it is not
# durable; on 4.x with the 4.3 defaults the broker refuses the declaration.
REFUSED_TRANSIENT = r"RabbitMQ 4\.x with the 4\.3 defaults refused to declare a transient"


def student(
    id: str, summary: str, edits: list[tuple[str, str]], expect: str, base: str = "student"
) -> Mistake:
    return Mistake(id, summary, tuple(edits), expect, base=base, extra_args=FIRST_FAILURE)


def reference(id: str, summary: str, edits: list[tuple[str, str]], expect: str) -> Mistake:
    return Mistake(id, summary, tuple(edits), expect, extra_args=FIRST_FAILURE)


MISTAKES = [
    # ------------------------------------------------------------------ capacity (Step 4)
    student(
        "no-prefetch",
        "never sets the prefetch, so every waiting message runs at once",
        [(SET_QOS, "")],
        r"Step 4: at most capacity=1 handlers may run at once, but \d+ ran together before any "
        r"of them had finished.*set_qos",
    ),
    student(
        "prefetch-one",
        "sets prefetch_count=1 (as in the qos lesson) instead of the capacity",
        [("prefetch_count=self.config.capacity", "prefetch_count=1")],
        r"capacity=3 lets 3 handlers run at once.*at most 1 ran together",
    ),
    student(
        "qos-after-consume",
        "calls set_qos after queue.consume: the consumer already has no limit",
        [(SET_QOS, ""), (CONSUME, CONSUME + SET_QOS)],
        r"at most capacity=\d handlers may run at once, but \d+ ran together",
    ),
    student(
        "semaphore-instead-of-prefetch",
        "limits handlers with a semaphore but takes every message from the queue",
        [
            (SET_QOS, ""),
            (
                "        self.tasks: set[asyncio.Task] = set()\n",
                "        self.tasks: set[asyncio.Task] = set()\n"
                "        self.semaphore = asyncio.Semaphore(config.capacity)\n",
            ),
            (
                "            await self.handler(msg)\n        except Exception:",
                "            async with self.semaphore:\n"
                "                await self.handler(msg)\n"
                "        except Exception:",
            ),
        ],
        r"the other 4 should stay in the queue.*took them all",
    ),
    student(
        "ack-multiple",
        "acks with multiple=True, which also acks the earlier messages still running",
        [("            await msg.ack()\n", "            await msg.ack(multiple=True)\n")],
        r"Step 4: at most capacity=3 handlers may run at once, but \d ran together once a "
        r"handler had finished.*multiple=True",
    ),
    student(
        "iterator-awaits-each-task",
        "reads queue.iterator() and awaits each task in the loop: one task at a time",
        [
            (
                "            task = asyncio.create_task(self._worker(msg))\n"
                "            self.running.add(task)\n"
                "            task.add_done_callback(self.running.discard)\n",
                "            await self._worker(msg)\n",
            )
        ],
        r"capacity=3 lets 3 handlers run at once.*at most 1 ran together",
        base="student_iterator",
    ),
    # ------------------------------------------------------------------ acknowledgements (Step 1)
    student(
        "no-ack",
        "never acks: handled messages come back after stop, and capacity=1 stalls",
        [(ACK, "")],
        r"Step 1: the handler succeeded, but the message went back to the queue: _worker did "
        r"not acknowledge it",
    ),
    student(
        "ack-not-awaited",
        "calls msg.ack() without await, so the ack is never sent",
        [("            await msg.ack()", "            msg.ack()")],
        r"Step 1: the handler succeeded, but the message went back to the queue.*not awaited",
    ),
    student(
        "handler-not-awaited",
        "calls self.handler(msg) without await, so the handler never runs",
        [("            await self.handler(msg)", "            self.handler(msg)")],
        r"Step 1: worker\._worker\(message\) returned, but the handler did not run",
    ),
    student(
        "ack-before-handler",
        "acks as soon as the message arrives, before the handler has run",
        [
            (
                "        try:\n            await self.handler(msg)\n" + ON_FAILURE + ACK,
                "        try:\n"
                "            await msg.ack()\n"
                "            await self.handler(msg)\n"
                "        except Exception:\n"
                "            pass\n",
            )
        ],
        r"Step 1: the handler got a message that _worker had already acknowledged",
    ),
    # ------------------------------------------------------------------ failures (Steps 1, 5)
    student(
        "no-except",
        "Step 1 without an except: a handler error leaves its message unsettled, the worker stalls",
        [(ON_FAILURE + ACK, "            await msg.ack()\n")],
        r"Step 1: the handler raised on one of 6 tasks.*let the exception escape without "
        r"settling that message",
    ),
    student(
        "swallows-errors",
        "catches the handler's error and logs it, but never settles the message",
        [("            await msg.nack(requeue=not msg.redelivered)\n", "")],
        r"Step 1: the handler raised on one of 6 tasks.*never settled that message",
    ),
    student(
        "requeue-forever",
        "requeues a failed task every time: a task that always fails loops forever",
        [("msg.nack(requeue=not msg.redelivered)", "msg.nack(requeue=True)")],
        r"Step 1: the task whose handler always raises was tried \d+ times",
    ),
    student(
        "requeue-forever-after-a-pause",
        "sleeps a little, then requeues a failed task: still forever",
        [
            (
                "            await msg.nack(requeue=not msg.redelivered)\n",
                "            await asyncio.sleep(0.2)\n            await msg.nack(requeue=True)\n",
            )
        ],
        r"Step 1: the task whose handler always raises was tried \d+ times",
    ),
    student(
        "header-retries-without-a-bound",
        "retries through a header but copies the old headers, so the count never grows",
        [('headers={"x-tries": tries + 1}', "headers=msg.headers")],
        r"Step 1: the task whose handler always raises was tried \d+ times",
        base="student_semaphore",
    ),
    student(
        "drops-failed-tasks",
        "rejects every failed task without requeue: a task that fails once is lost",
        [("msg.nack(requeue=not msg.redelivered)", "msg.nack(requeue=False)")],
        r"Step 5: the first try of each of 4 tasks raised.*0 of them were tried again.*dropped",
    ),
    student(
        "process-drops-failures",
        "uses `async with msg.process()`, which rejects a failed message without requeue",
        [
            (
                "        try:\n            await self.handler(msg)\n" + ON_FAILURE + ACK,
                "        try:\n"
                "            async with msg.process():\n"
                "                await self.handler(msg)\n",
            )
        ],
        r"Step 5: the first try of each of 4 tasks raised.*0 of them were tried again",
    ),
    # ------------------------------------------------------------ start / stop (Steps 2, 3, 5)
    student(
        "start-blocks",
        "start() waits forever after registering the consumer, to keep the worker alive",
        [(CONSUME, CONSUME + "        await asyncio.Future()  # keep running\n")],
        r"Step 2: worker\.start\(\) did not finish within 5 s",
    ),
    student(
        "declares-a-transient-queue",
        "the worker declares the work queue without durable=True",
        [(DECLARE, DECLARE.replace(", durable=True", ""))],
        r"Step 2: (your code declared the queue .* transient \(durable=False\)|worker\.start\(\): "
        + REFUSED_TRANSIENT
        + ")",
    ),
    student(
        "stop-closes-only-the-channel",
        "stop() closes the channel and leaves the connection open",
        [
            (
                "        channel = await self.connection.channel()\n",
                "        channel = self.channel = await self.connection.channel()\n",
            ),
            (WORKER_CLOSE, WORKER_CLOSE.replace("self.connection.close()", "self.channel.close()")),
        ],
        r"Step 3: after stop\(\) the broker still sees 1 open connection",
    ),
    student(
        "stop-does-nothing",
        "stop() is an empty method (the NotImplementedError was just deleted)",
        [(CANCEL_CONSUMER + WAIT_FOR_TASKS + WORKER_CLOSE.split("\n", 1)[1], "        pass\n")],
        r"Step 3: (after stop\(\) the broker still sees|a task put after stop\(\) was still)",
    ),
    student(
        "stop-waits-on-an-empty-set",
        "stop() calls asyncio.wait(self.tasks) also when no handler runs",
        [(WAIT_FOR_TASKS, "        await asyncio.wait(self.tasks)\n")],
        r"Step 3: worker\.stop\(\) raised ValueError: Set of Tasks/Futures is empty.*"
        r"asyncio\.wait\(\) refuses an empty set",
    ),
    student(
        "stop-does-not-wait",
        "stop() closes the connection at once: running handlers are cancelled",
        [(WAIT_FOR_TASKS, "")],
        r"Step 5: stop\(\) cancelled \d+ running handler",
    ),
    student(
        "stop-keeps-consuming-while-waiting",
        "stop() waits for the handlers without cancelling the consumer first",
        [(CANCEL_CONSUMER, "")],
        r"Step 5: \d new handler\(s\) started after stop\(\) began",
    ),
    student(
        "plain-connect",
        "the worker uses aio_pika.connect, which does not reconnect after a network failure",
        [
            (
                "connect_robust(self.config.rabbit_url)\n        channel",
                "connect(self.config.rabbit_url)\n        channel",
            )
        ],
        r"Step 5: after the network dropped the worker's connection, the worker handled 0 of "
        r"the 3 tasks.*never connected again",
    ),
    student(
        "exclusive-consumer",
        "consumes with exclusive=True: after a partition the old consumer keeps the new one out",
        [(CONSUME, CONSUME.replace("(self._worker)", "(self._worker, exclusive=True)"))],
        r"Step 5: after a network partition cut the worker's connection.*exclusive=True",
    ),
    # ------------------------------------------------------------------ the client
    student(
        "client-str-body",
        "the client sends str(data) instead of JSON",
        [("json.dumps(data).encode()", "str(data).encode()")],
        r"Client step 1: the message body is not JSON",
    ),
    student(
        "client-publishes-to-amq-direct",
        "the client publishes to the amq.direct exchange, to which the queue is not bound",
        [
            (
                CLIENT_PUBLISH,
                '        exchange = await self.channel.get_exchange("amq.direct")\n'
                "        await exchange.publish(message, routing_key=self.config.queue_name)",
            )
        ],
        r"Client step 1: put\(\) returned, but nothing arrived in the queue",
    ),
    student(
        "client-does-not-declare",
        "the client publishes without declaring the queue: tasks before any worker are lost",
        [(f"            {CLIENT_DECLARE}\n", "")],
        r"Client step 1: the queue .* did not exist before put\(\)",
    ),
    student(
        "client-declares-a-transient-queue",
        "the client declares the work queue without durable=True",
        [(CLIENT_DECLARE, CLIENT_DECLARE.replace(", durable=True", ""))],
        r"Client step 1: client\.put\(\{\.\.\.\}\): (your code declared the queue .* transient "
        r"\(durable=False\)|" + REFUSED_TRANSIENT + ")",
    ),
    student(
        "client-publishes-transient-tasks",
        "the client publishes without delivery_mode=PERSISTENT: a restart loses the tasks",
        [(", delivery_mode=aio_pika.DeliveryMode.PERSISTENT", "")],
        r"Client step 1: the task arrived as a transient message",
    ),
    student(
        "client-without-confirms",
        "the client's channel has publisher confirms off: put() returns before the broker has it",
        [
            (
                "self.channel = await self.connection.channel()\n",
                "self.channel = await self.connection.channel(publisher_confirms=False)\n",
            )
        ],
        r"Client step 1: put\(\) returned before the broker confirmed the task: its channel",
    ),
    student(
        "client-without-confirms-declares-every-put",
        "no publisher confirms, but put() declares the queue each time (so it does wait for the "
        "broker, just not for the task)",
        [
            (
                "self.channel = await self.connection.channel()\n",
                "self.channel = await self.connection.channel(publisher_confirms=False)\n",
            ),
            (CLIENT_PUBLISH, f"        {CLIENT_DECLARE}\n{CLIENT_PUBLISH}"),
        ],
        r"Client step 1: put\(\) returned before the broker confirmed the task: its channel",
    ),
    student(
        "client-put-does-not-wait",
        "put() schedules the publish (asyncio.ensure_future) and returns at once",
        [
            (
                CLIENT_PUBLISH,
                "        asyncio.ensure_future(\n"
                "            self.channel.default_exchange.publish(message, "
                "routing_key=self.config.queue_name)\n"
                "        )",
            )
        ],
        r"Client step 1: put\(\) returned before its task was published and confirmed",
    ),
    student(
        "client-connection-per-put",
        "the client opens a new connection on every put, and keeps them all open",
        [
            (
                CLIENT_CONNECT,
                "        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
                "        self.channel = await self.connection.channel()\n"
                "        await self.channel.declare_queue(self.config.queue_name, durable=True)\n",
            )
        ],
        r"Client step 1: 3 put\(\) calls opened 3 connections to the broker, and kept all 3 open",
    ),
    student(
        "client-connect-without-lock",
        "the client connects on the first put() with no lock: puts made at once before it is "
        "connected each open a connection, and all but the last stay open for good",
        [(CLIENT_CONNECT, "".join(f"{line[4:]}\n" for line in CLIENT_CONNECT.splitlines()[1:]))],
        r"Client step 1: 4 put\(\) calls made at once .* opened \d+ connections .* asyncio\.Lock",
    ),
    student(
        "client-connection-per-put-closed-each-time",
        "the client connects, publishes and closes in every put",
        [
            (
                CLIENT_CONNECT,
                "        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
                "        self.channel = await self.connection.channel()\n"
                "        await self.channel.declare_queue(self.config.queue_name, durable=True)\n",
            ),
            (CLIENT_PUBLISH, CLIENT_PUBLISH + "\n        await self.stop()"),
        ],
        r"Client step 1: 3 put\(\) calls opened 3 connections to the broker\. Connect once",
    ),
    student(
        "client-stop-closes-only-the-channel",
        "the client's stop() closes the channel and leaves the connection open",
        [(CLIENT_CLOSE, CLIENT_CLOSE.replace("self.connection.close()", "self.channel.close()"))],
        r"Client step 2: after client\.stop\(\) the broker still sees 1 open connection",
    ),
    student(
        "client-stop-without-connection",
        "the client's stop() assumes put() has connected",
        [(CLIENT_CLOSE, "        await self.connection.close()\n")],
        r"Client step 2: leaving `async with WorkerClient\(config\)` without any put\(\) raised",
    ),
    # ------------------------------------------------------------------ the reference, detuned
    reference(
        "reference-without-prefetch",
        "the reference without set_qos: its semaphore still bounds handlers, but it hoards",
        [
            (
                "                await self._channel.set_qos(prefetch_count=config.prefetch_count"
                " or config.capacity)\n",
                "",
            )
        ],
        r"the other 4 should stay in the queue.*took them all",
    ),
    reference(
        "reference-no-grace",
        "the reference with a grace period of 0 s: stop() cancels running handlers",
        [("grace_period: float = 10.0", "grace_period: float = 0.0")],
        r"Step 5: stop\(\) cancelled \d+ running handler",
    ),
    reference(
        "reference-no-retries",
        "the reference with max_retries=0: a task that fails once is parked, never retried",
        [("max_retries: int = 2", "max_retries: int = 0")],
        r"Step 5: the first try of each of 4 tasks raised.*0 of them were tried again",
    ),
    reference(
        "reference-endless-retries",
        "the reference retrying without a useful bound, every second",
        [
            ("max_retries: int = 2", "max_retries: int = 1_000_000"),
            ("retry_backoff: float = 2.0", "retry_backoff: float = 1.0"),
        ],
        r"Step 5: the task whose handler always raises was tried \d+ times",
    ),
]

"""Typical wrong Task 1 solutions, each a small edit of a correct one.

``tests/course/test_mistakes.py`` runs the graded suite (``--stretch``) on every entry and
requires a failure whose message matches ``expect``: the suite must not only reject the mistake
but name it. Most entries edit ``worker_student.py``, a plain correct solution written the way a
student would; a few edit the reference, whose extra machinery must not hide a mistake either.
"""

from __future__ import annotations

from pathlib import Path

from course.impl import REFERENCE_DIR
from course.mistakes import Mistake

MODULE = "rmq_worker"
SUITE = "tests/connectors/rabbit/test_rmq_worker.py"
BASES = {
    "reference": REFERENCE_DIR / "rmq_worker.py",
    "student": Path(__file__).with_name("worker_student.py"),
}

SET_QOS = "        await channel.set_qos(prefetch_count=self.config.capacity)\n"
CONSUME = "        self.consumer_tag = await self.queue.consume(self._worker)\n"
HANDLE_AND_SETTLE = (
    "        try:\n"
    "            await self.handler(msg)\n"
    "        except Exception:\n"
    "            await msg.nack(requeue=True)\n"
    "        else:\n"
    "            await msg.ack()\n"
)
CLIENT_CONNECT = (
    "        if self.connection is None:\n"
    "            self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
    "            self.channel = await self.connection.channel()\n"
    "            await self.channel.declare_queue(self.config.queue_name)\n"
)
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


def student(id: str, summary: str, edits: list[tuple[str, str]], expect: str) -> Mistake:
    return Mistake(id, summary, tuple(edits), expect, base="student", extra_args=FIRST_FAILURE)


MISTAKES = [
    # ------------------------------------------------------------------ capacity (Step 4)
    student(
        "no-prefetch",
        "never sets the prefetch, so every waiting message runs at once",
        [(SET_QOS, "")],
        r"Step 4: at most capacity=1 handlers may run at once, but \d+ ran together.*set_qos",
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
    # ------------------------------------------------------------------ acknowledgements (Step 1)
    student(
        "no-ack",
        "never acks: handled messages come back after stop, and capacity=1 stalls",
        [("        else:\n            await msg.ack()\n", "")],
        r"Step 1: the handler succeeded, but the message went back to the queue",
    ),
    student(
        "ack-not-awaited",
        "calls msg.ack() without await, so the ack is never sent",
        [("            await msg.ack()", "            msg.ack()")],
        r"Step 1: the handler succeeded, but the message went back to the queue",
    ),
    student(
        "handler-not-awaited",
        "calls self.handler(msg) without await, so the handler never runs",
        [("            await self.handler(msg)", "            self.handler(msg)")],
        r"Step 1: worker._worker\(message\) returned, but the handler did not run",
    ),
    student(
        "ack-before-handler",
        "acks as soon as the message arrives, before the handler has run",
        [
            (
                HANDLE_AND_SETTLE,
                "        try:\n"
                "            await msg.ack()\n"
                "            await self.handler(msg)\n"
                "        except Exception:\n"
                "            pass\n",
            )
        ],
        r"at most capacity=\d handlers may run at once, but \d+ ran together",
    ),
    student(
        "process-drops-failures",
        "uses `async with msg.process()`, which rejects a failed message without requeue",
        [
            (
                HANDLE_AND_SETTLE,
                "        try:\n"
                "            async with msg.process():\n"
                "                await self.handler(msg)\n",
            )
        ],
        r"first try of each of 2 tasks raised.*0 of them were tried again",
    ),
    student(
        "reject-failed-message",
        "rejects a failed message, expecting the broker to deliver it again",
        [("            await msg.nack(requeue=True)", "            await msg.reject()")],
        r"first try of each of 2 tasks raised.*0 of them were tried again",
    ),
    # ------------------------------------------------------------ start / stop (Steps 2, 3, 5)
    student(
        "start-blocks",
        "start() waits forever after registering the consumer, to keep the worker alive",
        [(CONSUME, CONSUME + "        await asyncio.Future()  # keep running\n")],
        r"Step 2: worker\.start\(\) did not finish within 5 s",
    ),
    student(
        "start-declares-a-durable-queue",
        "declares the work queue durable=True, unlike every other program that uses it",
        [
            (
                "self.queue = await channel.declare_queue(self.config.queue_name)",
                "self.queue = await channel.declare_queue(self.config.queue_name, durable=True)",
            )
        ],
        r"exists with other settings than the defaults",
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
        "stop-does-not-wait",
        "stop() closes the connection at once: running handlers are cancelled",
        [(WAIT_FOR_TASKS, "")],
        r"Step 5: stop\(\) cancelled 2 running handler",
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
        r"Step 5: after the connection to the broker was cut, the worker did not handle",
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
        [("            await self.channel.declare_queue(self.config.queue_name)\n", "")],
        r"Client step 1: the queue .* did not exist before put\(\)",
    ),
    student(
        "client-connection-per-put",
        "the client opens a new connection on every put and stop() closes only the last",
        [
            (
                CLIENT_CONNECT,
                "        self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
                "        self.channel = await self.connection.channel()\n"
                "        await self.channel.declare_queue(self.config.queue_name)\n",
            )
        ],
        r"Client step 2: after client\.stop\(\) the broker still sees 1 open connection",
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
    Mistake(
        "reference-without-prefetch",
        "the reference without set_qos: its semaphore still bounds handlers, but it hoards",
        (
            (
                "                await self._channel.set_qos(prefetch_count=config.prefetch_count"
                " or config.capacity)\n",
                "",
            ),
        ),
        r"the other 4 should stay in the queue.*took them all",
        extra_args=FIRST_FAILURE,
    ),
    Mistake(
        "reference-no-grace",
        "the reference with a grace period of 0 s: stop() cancels running handlers",
        (("grace_period: float = 10.0", "grace_period: float = 0.0"),),
        r"Step 5: stop\(\) cancelled 2 running handler",
        extra_args=FIRST_FAILURE,
    ),
    Mistake(
        "reference-no-retries",
        "the reference with max_retries=0: a task that fails once is parked, never retried",
        (("max_retries: int = 3", "max_retries: int = 0"),),
        r"first try of each of 2 tasks raised.*0 of them were tried again",
        extra_args=FIRST_FAILURE,
    ),
]

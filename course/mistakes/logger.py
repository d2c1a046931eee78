"""Typical wrong Loggers (Task 2) that the graded suite must reject, each with a telling message.

Most are small edits of ``logger_student.py``, a plain correct solution written the way a
student would: a student who is almost right. A few edit the reference. Every ``expect`` is a
regular expression that the first failure message of the suite must match (runs stop at the
first failing test), so a mistake counts as caught only when the suite says what is wrong, not
when something else happens to break.

The bases are correct solutions in different styles, and each must get full marks: the
reference (one connection, its own reconnect loop, prefetch 32 with handlers taking turns),
``logger_student.py`` (``connect_robust`` under a lock, prefetch 1, ``message.process()``, a
reconnect callback) and ``logger_split.py`` (separate connections to publish and to listen,
``queue.iterator(no_ack=True)``, a reconnect loop of its own).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from course.impl import REFERENCE_DIR
from course.mistakes import Mistake

MODULE = "rmq_logger"
SUITE = "tests/connectors/rabbit/test_rmq_logger.py"
BASES = {
    "reference": REFERENCE_DIR / "rmq_logger.py",
    "student": Path(__file__).with_name("logger_student.py"),
    "split": Path(__file__).with_name("logger_split.py"),
}

S = "student"

PROCESS_BLOCK = (
    "        async with message.process():\n"
    "            data = json.loads(message.body)\n"
    "            if not isinstance(data, dict):\n"
    '                raise ValueError(f"the event is not a JSON object: {data!r}")\n'
    '            if message.routing_key == "info":\n'
    "                await self.handle_info(data)\n"
    '            elif message.routing_key == "critical":\n'
    "                await self.handle_critical(data)\n"
)
NO_PROCESS_BLOCK = (
    "        data = json.loads(message.body)\n"
    '        if message.routing_key == "info":\n'
    "            await self.handle_info(data)\n"
    '        elif message.routing_key == "critical":\n'
    "            await self.handle_critical(data)\n"
)
SET_QOS = "        await self.channel.set_qos(prefetch_count=1)\n"
RECONNECT_CALLBACK = "        self.connection.reconnect_callbacks.add(self._on_reconnect)\n"
PUBLISH = "await self.exchange.publish(aio_pika.Message(body), routing_key=routing_key)"
CONNECT = (
    "        async with self._lock:"
    "  # when the first events come at once, only the first connects\n"
    "            if self.connection is None:\n"
    "                self.connection = await aio_pika.connect_robust(self.config.rabbit_url)\n"
    "                self.channel = await self.connection.channel()\n"
    "                self.exchange = await self.channel.declare_exchange(\n"
    "                    self.config.name, aio_pika.ExchangeType.DIRECT\n"
    "                )\n"
)
HANDLER_HEAD = (
    "    async def _handler(self, message: AbstractIncomingMessage) -> None:\n"
    '        """Step 3: the queue\'s consumer: decode the event and call the handler of its '
    'level."""\n'
    "        async with message.process():\n"
)

_MISTAKES = [
    # ------------------------------------------------------------ exchange type and naming
    Mistake(
        "fanout-exchange",
        "declares the bus as a FANOUT exchange, which ignores routing keys",
        (("aio_pika.ExchangeType.DIRECT", "aio_pika.ExchangeType.FANOUT"),),
        r"is not DIRECT",
        base=S,
    ),
    Mistake(
        "durable-exchange",
        "declares the bus durable, so a plain declaration by another client is refused",
        (
            (
                "self.config.name, aio_pika.ExchangeType.DIRECT\n",
                "self.config.name, aio_pika.ExchangeType.DIRECT, durable=True\n",
            ),
        ),
        r"default arguments",
        base=S,
    ),
    Mistake(
        "exchange-named-by-hand",
        "names the exchange 'logger_metaclass' (from the task text) instead of config.name",
        (("self.config.name, aio_pika", '"logger_metaclass", aio_pika'),),
        r"named config\.name|no exchange named",
        base=S,
    ),
    Mistake(
        "publish-to-default-exchange",
        "info()/critical() publish to the default exchange with routing key info/critical",
        (
            (
                "await self.exchange.publish(aio_pika.Message(body), routing_key=routing_key)",
                "await self.channel.default_exchange.publish(\n"
                "            aio_pika.Message(body), routing_key=routing_key\n"
                "        )",
            ),
        ),
        r"not to channel\.default_exchange",
        base=S,
    ),
    # ------------------------------------------------------------ the queue's scope and lifetime
    Mistake(
        "shared-named-queue",
        "every logger of a bus consumes one queue with a fixed name: events are shared out",
        (
            (
                "declare_queue(exclusive=True, robust=False)",
                # Durable (RabbitMQ 4.3 refuses a transient shared queue), and x-expires only
                # so that the broker removes it 20 s after the test.
                'declare_queue(self.config.name, durable=True, arguments={"x-expires": 20000})',
            ),
        ),
        r"must each hear all .* shared out .* share one queue",
        base=S,
    ),
    Mistake(
        "exclusive-fixed-name",
        "an exclusive queue with a fixed name: the second logger on a bus cannot start",
        (
            (
                "declare_queue(exclusive=True, robust=False)",
                "declare_queue(self.config.name, exclusive=True, robust=False)",
            ),
        ),
        r"logger #2 of 3 .* raised .*queue of its own",
        base=S,
    ),
    Mistake(
        "queue-outlives-logger",
        "the queue is not exclusive (nor auto-delete): it stays bound after stop()",
        (
            (
                "declare_queue(exclusive=True, robust=False)",
                # Durable (RabbitMQ 4.3 refuses a transient shared queue), and x-expires only
                # so that the broker removes it 20 s after the test.
                'declare_queue(durable=True, arguments={"x-expires": 20000}, robust=False)',
            ),
        ),
        r"after stop\(\) a queue is still bound",
        base=S,
    ),
    Mistake(
        "reference-queue-not-exclusive",
        "the reference, with its queue declared non-exclusive",
        (
            (
                'declare_queue("", exclusive=True)',
                'declare_queue("", durable=True, arguments={"x-expires": 20000})',
            ),
        ),
        r"after stop\(\) a queue is still bound",
    ),
    # ------------------------------------------------------------ bindings
    Mistake(
        "binds-only-info",
        "binds the queue with 'info' only: critical events never arrive",
        (('        await queue.bind(self.exchange, routing_key="critical")\n', ""),),
        r"handle_critical got nothing, and no critical event reached _handler: is the queue "
        r"bound with 'critical'",
        base=S,
    ),
    Mistake(
        "binds-without-routing-key",
        "binds the queue once, without a routing key (so with the queue's own name)",
        (
            (
                '        await queue.bind(self.exchange, routing_key="info")\n'
                '        await queue.bind(self.exchange, routing_key="critical")\n',
                "        await queue.bind(self.exchange)\n",
            ),
        ),
        r"Nothing reached _handler\. Check that start\(\) binds",
        base=S,
    ),
    Mistake(
        "start-without-consume",
        "declares and binds the queue but never consumes it",
        (("        await queue.consume(self._handler)\n", ""),),
        r"no basic\.consume had gone out",
        base=S,
    ),
    # ------------------------------------------------------------ dispatch
    Mistake(
        "dispatch-by-body",
        "chooses the handler by the body ('info' in data) instead of the routing key",
        (
            ('if message.routing_key == "info":', 'if "info" in data:'),
            ('elif message.routing_key == "critical":', "else:"),
        ),
        r"wrong handler .* by message\.routing_key",
        base=S,
    ),
    Mistake(
        "dispatch-swapped",
        "info events go to handle_critical and critical ones to handle_info",
        (
            ("await self.handle_info(data)", "await self.handle_xxx(data)"),
            ("await self.handle_critical(data)", "await self.handle_info(data)"),
            ("await self.handle_xxx(data)", "await self.handle_critical(data)"),
        ),
        r"wrong handler",
        base=S,
    ),
    Mistake(
        "handler-left-as-stub",
        "start() is done, but _handler still raises NotImplementedError (in aio-pika's task)",
        (
            (
                "        async with message.process():\n"
                "            data = json.loads(message.body)\n",
                "        raise NotImplementedError\n"
                "        async with message.process():\n"
                "            data = json.loads(message.body)\n",
            ),
        ),
        r"Not implemented yet: Logger\._handler\(\) in rmq_logger\.py\. Step 3",
        base=S,
    ),
    # ------------------------------------------------------------ message format
    Mistake(
        "str-instead-of-json",
        "publishes str(data), a Python repr with single quotes, instead of JSON",
        (("body = json.dumps(data).encode()", "body = str(data).encode()"),),
        r"not JSON\. Encode the dict with json\.dumps",
        base=S,
    ),
    Mistake(
        "raw-body-to-handler",
        "passes the raw body (bytes) to handle_info instead of the decoded dict",
        (("await self.handle_info(data)", "await self.handle_info(message.body)"),),
        r"bytes values .* not dicts: decode the body with json\.loads",
        base=S,
    ),
    Mistake(
        "wrapped-event",
        "publishes {'msg': level, 'data': data} (the original course's format) instead of data",
        (
            (
                "body = json.dumps(data).encode()",
                'body = json.dumps({"msg": routing_key, "data": data}).encode()',
            ),
        ),
        r"not the data it was given",
        base=S,
    ),
    # ------------------------------------------------------------ start/stop
    Mistake(
        "start-blocks",
        "start() waits forever after consuming (like the lessons' run_forever) and never returns",
        (
            (
                "        await queue.consume(self._handler)\n",
                "        await queue.consume(self._handler)\n        await asyncio.Future()\n",
            ),
        ),
        r"Step 1: logger\.start\(\) did not finish within",
        base=S,
    ),
    Mistake(
        "info-needs-start",
        "info() uses the exchange that only start() sets up: a publisher-only logger crashes",
        (("        await self._connect()\n        body =", "        body ="),),
        r"Step 4: logger\.info\(data\) on a logger that was not started raised",
        base=S,
    ),
    Mistake(
        "info-starts-a-listener",
        "info() calls start(), so a logger that only publishes gets a queue and hears the bus",
        (
            (
                "        await self._connect()\n        body =",
                "        await self.start()\n        body =",
            ),
        ),
        r"only published .* has a queue bound",
        base=S,
    ),
    Mistake(
        "stop-closes-only-the-channel",
        "stop() closes the channel and leaves the connection open",
        (("await self.connection.close()", "await self.channel.close()"),),
        r"still has 1 open connection",
        base=S,
    ),
    Mistake(
        "stop-does-nothing",
        "stop() forgets the connection without closing it",
        (("            await self.connection.close()\n", ""),),
        r"after stop\(\) the logger still heard events",
        base=S,
    ),
    Mistake(
        "stop-unsafe-before-start",
        "stop() closes self.connection without checking that there is one",
        (
            (
                "        if self.connection is not None:\n"
                "            await self.connection.close()\n"
                "            self.connection = None\n",
                "        await self.connection.close()\n        self.connection = None\n",
            ),
        ),
        r"stop\(\) before start\(\) raised AttributeError",
        base=S,
    ),
    # ------------------------------------------------------------ settling and order
    Mistake(
        "never-acks",
        "consumes in manual-ack mode and never acks: with prefetch_count=1 only the first event "
        "ever comes",
        ((PROCESS_BLOCK, NO_PROCESS_BLOCK),),
        r"never settled",
        base=S,
    ),
    Mistake(
        "never-acks-no-prefetch",
        "consumes in manual-ack mode, never acks and sets no prefetch: every event comes, and "
        "stays unacknowledged on the broker for the logger's whole life",
        ((PROCESS_BLOCK, NO_PROCESS_BLOCK), (SET_QOS, "")),
        r"never acknowledged",
        base=S,
    ),
    Mistake(
        "handlers-at-once",
        "sets no prefetch: aio-pika runs a handler for every event it receives at once, and "
        "events that await finish out of order",
        ((SET_QOS, ""),),
        r"handlers ran at the same time",
        base=S,
    ),
    Mistake(
        "acks-before-handling",
        "acks each event before its handler runs, so prefetch_count=1 no longer holds the next "
        "one back: handlers overlap",
        (
            ("async with message.process():", "async with message.process(ignore_processed=True):"),
            (
                "            data = json.loads(message.body)\n",
                "            await message.ack()\n            data = json.loads(message.body)\n",
            ),
        ),
        r"handlers ran at the same time.*ack only once",
        base=S,
    ),
    Mistake(
        "reference-handlers-at-once",
        "the reference, its handlers not taking turns (prefetch 32): they overlap",
        (
            (
                "            async with self._turn:  # one at a time, in the order the events came",
                "            async with contextlib.nullcontext():",
            ),
        ),
        r"handlers ran at the same time",
    ),
    # ------------------------------------------------------------ connections and confirms
    Mistake(
        "connection-per-event",
        "opens a new connection for every info()/critical() and leaves them all open",
        (
            (
                "        await self._connect()\n        body =",
                "        self.connection = None\n        await self._connect()\n        body =",
            ),
        ),
        r"opened 2 connections .* a new one for each event",
        base=S,
    ),
    Mistake(
        "connection-per-event-closed",
        "publishes every event over a connection of its own, closed right after",
        (
            (
                PUBLISH,
                "async with await aio_pika.connect(self.config.rabbit_url) as connection:\n"
                "            channel = await connection.channel()\n"
                "            exchange = await channel.declare_exchange(\n"
                "                self.config.name, aio_pika.ExchangeType.DIRECT\n"
                "            )\n"
                "            await exchange.publish(\n"
                "                aio_pika.Message(body), routing_key=routing_key\n"
                "            )",
            ),
        ),
        r"opened \d+ connections .* a new one for each event",
        base=S,
    ),
    Mistake(
        "publish-not-awaited",
        "info() hands the publish to asyncio.ensure_future and returns before the broker has "
        "the event (and its errors never surface)",
        (
            (
                PUBLISH,
                "asyncio.ensure_future(\n"
                "            self.exchange.publish(aio_pika.Message(body), routing_key=routing_key)"
                "\n        )",
            ),
        ),
        r"info\(.*\) returned before its event was published and confirmed",
        base=S,
    ),
    Mistake(
        "no-publisher-confirms",
        "opens the channel with publisher_confirms=False: info() returns before the broker has "
        "the event",
        (
            (
                "await self.connection.channel()",
                "await self.connection.channel(publisher_confirms=False)",
            ),
        ),
        r"info\(.*\) returned before the broker confirmed the event: its channel has no",
        base=S,
    ),
    Mistake(
        "reference-no-publisher-confirms",
        "the reference, its channel opened without publisher confirms",
        (
            (
                "channel = await connection.channel()",
                "channel = await connection.channel(publisher_confirms=False)",
            ),
        ),
        r"info\(.*\) returned before the broker confirmed the event: its channel has no",
    ),
    # ------------------------------------------------------------ starred: bad input, reconnect
    Mistake(
        "bad-body-blocks-the-queue",
        "acks only after success, without message.process(): with prefetch_count=1, one bad "
        "body stays unacked and blocks the logger for good",
        ((PROCESS_BLOCK, NO_PROCESS_BLOCK + "        await message.ack()\n"),),
        r"stopped hearing the bus",
        base=S,
    ),
    Mistake(
        "non-object-json-reaches-handlers",
        "passes any JSON value to the handlers, lists and numbers included",
        (
            (
                "            if not isinstance(data, dict):\n"
                '                raise ValueError(f"the event is not a JSON object: {data!r}")\n',
                "",
            ),
        ),
        r"only events whose body is a JSON object may reach the handlers",
        base=S,
    ),
    Mistake(
        "requeue-on-error",
        "message.process(requeue=True): an event whose handler raised comes back forever",
        (("async with message.process():", "async with message.process(requeue=True):"),),
        r"came back again and again",
        base=S,
    ),
    Mistake(
        "reference-requeues-failures",
        "the reference, rejecting a failed event with requeue=True",
        (("await message.reject(requeue=False)", "await message.reject(requeue=True)"),),
        r"came back again and again",
    ),
    Mistake(
        "no-reconnect",
        "connects with aio_pika.connect (not connect_robust): a dropped connection stays dropped",
        (
            ("aio_pika.connect_robust(", "aio_pika.connect("),
            ("declare_queue(exclusive=True, robust=False)", "declare_queue(exclusive=True)"),
            (RECONNECT_CALLBACK, ""),
        ),
        r"after an outage .* the logger did not hear the bus again",
        base=S,
    ),
    Mistake(
        "robust-exclusive-queue",
        "the old hint: connect_robust restores the exclusive queue under its old name, which the "
        "broker still holds after a partition (RESOURCE_LOCKED, deaf for good)",
        (
            ("declare_queue(exclusive=True, robust=False)", "declare_queue(exclusive=True)"),
            (RECONNECT_CALLBACK, ""),
        ),
        r"after a network partition.*RESOURCE_LOCKED",
        base=S,
    ),
    Mistake(
        "reference-never-reconnects",
        "the reference, with its reconnect task never started",
        (
            (
                "        if self._started and (self._reconnecting is None",
                "        if False and (self._reconnecting is None",
            ),
        ),
        r"did not hear the bus again",
    ),
    # ------------------------------------------------------------ found by the red team
    Mistake(
        "connect-without-lock",
        "connects lazily with `if self.connection is None:` and no lock, as the old hint taught: "
        "the first events, sent at once, each open a connection, and all but one stay open",
        (
            (
                CONNECT,
                "".join(f"{line[4:]}\n" for line in CONNECT.splitlines()[1:]),  # no lock
            ),
        ),
        r"8 calls of info\(\) made at once .* opened \d+ connections .* asyncio\.Lock",
        base=S,
    ),
    Mistake(
        "split-publisher-without-lock",
        "the split solution, its publishing connection opened without a lock",
        (
            (
                "        async with self._lock:  # when the first events come at once, only the "
                "first connects\n"
                "            if self.connection is None:\n"
                "                self.connection = await aio_pika.connect_robust(",
                "        if True:\n"
                "            if self.connection is None:\n"
                "                self.connection = await aio_pika.connect_robust(",
            ),
        ),
        r"8 calls of info\(\) made at once .* opened \d+ connections .* asyncio\.Lock",
        base="split",
    ),
    Mistake(
        "start-connects-over-the-publisher",
        "start() opens a fresh connection over the one info() opened, which then stays open "
        "for good",
        (
            (
                "        await self._connect()\n        await self.channel.set_qos(",
                "        self.connection = None  # a fresh connection for listening\n"
                "        await self._connect()\n        await self.channel.set_qos(",
            ),
        ),
        r"published \(info\(\)\), then started, then stopped still has 1 open connection",
        base=S,
    ),
    Mistake(
        "channel-per-event",
        "info() opens a new channel for every event and never closes it: after about 2000 "
        "events the connection runs out of channels (channel_max)",
        (
            (
                "        " + PUBLISH + "\n",
                "        channel = await self.connection.channel()\n"
                "        exchange = await channel.declare_exchange(\n"
                "            self.config.name, aio_pika.ExchangeType.DIRECT\n"
                "        )\n"
                "        await exchange.publish(aio_pika.Message(body), routing_key=routing_key)\n",
            ),
        ),
        r"10 calls of info\(\) opened \d+ channels .* a channel for each event",
        base=S,
    ),
    Mistake(
        "publish-errors-swallowed",
        "info() catches and logs the publish's errors: an event the broker never got is lost, "
        "and the caller is not told",
        (
            (
                "        " + PUBLISH + "\n",
                "        try:\n"
                "            " + PUBLISH + "\n"
                "        except Exception as error:  # logging must never break the program\n"
                '            print("could not publish an event:", error)\n',
            ),
        ),
        r"info\(\) returned normally .* RabbitMQ could not be reached: the event was lost",
        base=S,
    ),
    Mistake(
        "publish-gives-up-quietly",
        "info() gives the publish 1 s (asyncio.wait_for) and suppresses every error: logging "
        "never blocks, but lost events vanish",
        (
            ("import asyncio\n", "import asyncio\nimport contextlib\n"),
            (
                "        " + PUBLISH + "\n",
                "        with contextlib.suppress(Exception):  # logging must never block\n"
                "            await asyncio.wait_for(\n"
                "                self.exchange.publish(aio_pika.Message(body), routing_key="
                "routing_key), 1.0\n"
                "            )\n",
            ),
        ),
        r"info\(\) returned normally .* RabbitMQ could not be reached: the event was lost",
        base=S,
    ),
    Mistake(
        "drops-repeated-events",
        "_handler drops an event equal to one it handled before (a growing set of the events "
        "seen): the same thing happening twice is handled once",
        (
            (
                "        self._lock = asyncio.Lock()\n",
                "        self._lock = asyncio.Lock()\n"
                "        self._seen: set[tuple[str | None, bytes]] = set()  # handled already\n",
            ),
            (
                HANDLER_HEAD,
                HANDLER_HEAD + "            key = (message.routing_key, message.body)\n"
                "            if key in self._seen:  # a duplicate delivery: handled already\n"
                "                return\n"
                "            self._seen.add(key)\n",
            ),
        ),
        r"published 3 times and reached _handler 3 times, but handle_critical got it 1 time.*"
        r"Do not drop repeats",
        base=S,
    ),
    Mistake(
        "drops-repeats-across-loggers",
        "a set of the bodies seen, kept on the class: every logger of the program shares it, "
        "so each event is handled by one logger only, and repeats by none",
        (
            (
                HANDLER_HEAD,
                "    _seen: set[bytes] = set()\n\n"
                + HANDLER_HEAD
                + "            if message.body in self._seen:  # handled already\n"
                "                return\n"
                "            self._seen.add(message.body)\n",
            ),
        ),
        r"published 3 times and reached _handler 3 times, but handle_critical got it 1 time",
        base=S,
    ),
    Mistake(
        "busy-waits-for-its-turn",
        "prefetch 10 and a flag polled with `while self._busy: await asyncio.sleep(0)`: events "
        "wait their turn spinning, a CPU core at 100 % while the handlers only await",
        (
            ("set_qos(prefetch_count=1)", "set_qos(prefetch_count=10)"),
            (
                HANDLER_HEAD,
                "    async def _handler(self, message: AbstractIncomingMessage) -> None:\n"
                '        while getattr(self, "_busy", False):  # another event is being handled\n'
                "            await asyncio.sleep(0)\n"
                "        self._busy = True\n"
                "        try:\n"
                "            await self._handle(message)\n"
                "        finally:\n"
                "            self._busy = False\n\n"
                "    async def _handle(self, message: AbstractIncomingMessage) -> None:\n"
                "        async with message.process():\n",
            ),
        ),
        r"used [\d.]+ s of CPU in [\d.]+ s: the logger kept the CPU busy",
        base=S,
    ),
    Mistake(
        "keeps-every-task",
        "_handler remembers its task in a list (for a graceful stop) and never forgets it: "
        "memory grows with every event",
        (
            (
                "        self._lock = asyncio.Lock()\n",
                "        self._lock = asyncio.Lock()\n"
                "        self._tasks: list[asyncio.Task] = []  # for a graceful stop()\n",
            ),
            (
                HANDLER_HEAD,
                HANDLER_HEAD.replace(
                    "        async with message.process():\n",
                    "        self._tasks.append(asyncio.current_task())\n"
                    "        async with message.process():\n",
                ),
            ),
        ),
        r"finished asyncio tasks are alive than before them .* keeps a task per event",
        base=S,
    ),
    Mistake(
        "auto-delete-queue",
        "a server-named auto_delete=True queue instead of an exclusive one: RabbitMQ 3.x takes "
        "it, 4.3 refuses it (neither durable nor exclusive) and start() fails",
        (
            (
                "declare_queue(exclusive=True, robust=False)",
                "declare_queue(auto_delete=True, robust=False)",
            ),
        ),
        r"A logger's queue is its own: declare_queue\(exclusive=True\)",
        base=S,
    ),
    Mistake(
        "no-ack-handlers-at-once",
        "consumes with no_ack=True and keeps prefetch_count=1, which a no_ack consumer ignores: "
        "every event comes at once, and the handlers overlap",
        (
            (
                "await queue.consume(self._handler)",
                "await queue.consume(self._handler, no_ack=True)",
            ),
            ("        async with message.process():\n", "        if True:\n"),
        ),
        r"already settled .* whatever the prefetch_count",
        base=S,
    ),
    Mistake(
        "start-binds-in-background",
        "start() sets the queue up in a background task and returns before it is bound: the "
        "first events are lost",
        (
            (
                "        await self._listen()\n        self.connection.reconnect_callbacks",
                "        self._setting_up = asyncio.create_task(self._listen())  # no waiting\n"
                "        self.connection.reconnect_callbacks",
            ),
        ),
        r"start\(\) returned before the logger had asked the broker to consume its queue",
        base=S,
    ),
    Mistake(
        "handler-never-returns",
        "_handler waits for something that never happens, so the first event is never done",
        (
            (
                "        async with message.process():\n            data = json.loads",
                "        async with message.process():\n"
                "            await asyncio.Event().wait()  # (waits for nothing that comes)\n"
                "            data = json.loads",
            ),
        ),
        r"_handler\(message\) has not returned \d+ s after it got an event \(it waits at "
        r"rmq_logger\.py, line \d+, in _handler\)",
        base=S,
    ),
    Mistake(
        "one-lock-for-all",
        "the reference with one lock for connecting and for the handlers' turns: a handler "
        "that publishes waits for the lock it holds",
        (("        self._turn = asyncio.Lock()\n", "        self._turn = self._lock\n"),),
        r"critical\(\) has not returned \d+ s later \(it waits at rmq_logger\.py, line \d+, in "
        r"_publish\).* A handler may publish",
    ),
    Mistake(
        "stop-leaves-the-listening-loop",
        "the split solution, its stop() closing the listening connection but not ending the "
        "loop, which connects again a second later: the logger still hears the bus",
        (
            (
                "                async with await aio_pika.connect(self.config.rabbit_url) as "
                "connection:\n",
                "                async with await aio_pika.connect(self.config.rabbit_url) as "
                "connection:\n"
                "                    self._listener = connection\n",
            ),
            (
                "        self._lock = asyncio.Lock()\n",
                "        self._lock = asyncio.Lock()\n"
                "        self._listener: AbstractConnection | None = None\n",
            ),
            (
                "        await self._stop_listening()\n        if self.connection",
                "        if self._listener is not None:\n"
                "            await self._listener.close()\n"
                "            self._listener = None\n"
                "        if self.connection",
            ),
        ),
        r"after stop\(\) the logger still runs _listen .* stop\(\) must end every task",
        base="split",
    ),
    Mistake(
        "publisher-never-reconnects",
        "the split solution, its publishing connection a plain aio_pika.connect: after one "
        "network blip every info() raises, forever",
        (
            (
                "self.connection = await aio_pika.connect_robust(self.config.rabbit_url)",
                "self.connection = await aio_pika.connect(self.config.rabbit_url)",
            ),
        ),
        r"after an outage, the logger heard the bus again, but its info\(\) still failed",
        base="split",
    ),
    Mistake(
        "reconnect-without-pause",
        "the split solution, its reconnect loop trying again at once: an outage becomes a storm "
        "of connection attempts",
        (("RETRY_SECONDS = 1.0", "RETRY_SECONDS = 0.0"),),
        r"outage the logger tried to connect \d+ times",
        base="split",
    ),
    Mistake(
        "reconnect-callback-added-per-listen",
        "registers the reconnect callback each time it listens: after the second reconnect "
        "every event comes twice (then 4 times, ...)",
        (
            (RECONNECT_CALLBACK, ""),
            (
                "        await queue.consume(self._handler)\n",
                "        await queue.consume(self._handler)\n\n"
                "        async def again(connection: AbstractConnection) -> None:\n"
                "            await self._listen()\n\n"
                "        self.connection.reconnect_callbacks.add(again)\n",
            ),
        ),
        r"after a network partition, 12 events were published once each, and the handlers got "
        r"\d+ .* through 2 consumers",
        base=S,
    ),
    Mistake(
        "reconnect-calls-start",
        "the reconnect callback calls start() again, which adds one more callback each time: "
        "events come twice after the second reconnect",
        (
            (
                RECONNECT_CALLBACK,
                "\n        async def again(connection: AbstractConnection) -> None:\n"
                "            await self.start()  # set it all up again on the new connection\n\n"
                "        self.connection.reconnect_callbacks.add(again)\n",
            ),
        ),
        r"after a network partition, 12 events were published once each, and the handlers got "
        r"\d+ .* consumers at once",
        base=S,
    ),
    Mistake(
        "own-reconnect-forgets-prefetch",
        "reconnects in a loop of its own (plain aio_pika.connect), but sets prefetch_count=1 "
        "only in start(): after a reconnect the handlers overlap and events come out of order",
        (
            (
                "await aio_pika.connect_robust(self.config.rabbit_url)\n",
                "await aio_pika.connect(self.config.rabbit_url)\n"
                "                self.connection.close_callbacks.add(self._on_close)\n",
            ),
            (
                "    async def start(self) -> None:\n",
                "    def _on_close(self, connection: object, error: object) -> None:\n"
                "        if error is not None and self._listening:  # lost, not closed by stop()\n"
                "            self.connection = None\n"
                "            self._again = asyncio.create_task(self._reconnect())\n\n"
                "    async def _reconnect(self) -> None:\n"
                "        while self._listening:\n"
                "            await asyncio.sleep(1)\n"
                "            try:\n"
                "                await self._connect()\n"
                "                await self._listen()\n"
                "                return\n"
                "            except Exception:\n"
                "                self.connection = None\n\n"
                "    async def start(self) -> None:\n",
            ),
            (
                "        self._lock = asyncio.Lock()\n",
                "        self._lock = asyncio.Lock()\n        self._listening = False\n",
            ),
            (RECONNECT_CALLBACK, "        self._listening = True\n"),
            (
                "declare_queue(exclusive=True, robust=False)",
                "declare_queue(exclusive=True)",
            ),
            (
                '        """Step 2: close the connection to RabbitMQ (its temporary queue goes '
                'with it)."""\n',
                '        """Step 2: close the connection to RabbitMQ (its temporary queue goes '
                'with it)."""\n'
                "        self._listening = False\n",
            ),
        ),
        r"after an outage, up to \d+ handlers ran at the same time.*prefetch_count=1 on the new "
        r"channel",
        base=S,
    ),
]

# Each run stops at the first failing test (-x): that failure, the first one a student reads,
# must name the mistake. It also spares the run the timeouts of every later test.
MISTAKES = [dataclasses.replace(mistake, extra_args=("-x",)) for mistake in _MISTAKES]

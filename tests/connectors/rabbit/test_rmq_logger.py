"""Task 2: the Logger in connectors/rabbit/task/rmq_logger.py (task text: README.md there).

Run it with:

    pytest tests/connectors/rabbit/test_rmq_logger.py -vv

Each failure names the step of the task it checks and what you most likely got wrong. The two
starred tests at the end are skipped until you delete their ``@pytest.mark.skip`` line.

How these tests work: every test makes its own bus (an exchange with a unique name) on a real
RabbitMQ. Your loggers connect through a small proxy (``proxy.url``), which lets the tests count
your connections and channels, read what your code asks of the broker, and stall or cut the
network on purpose. The tests publish and listen to the bus themselves with plain aio-pika (and
once with pika), so they check your Logger against what RabbitMQ really does, not against
another copy of your code.

The loggers under test are subclasses of yours that override only ``_handler`` (to see each
delivery, then call yours), ``handle_info`` and ``handle_critical``; they add no attribute of
their own, so your names never clash with the tests'. Their handlers take a little time (they
``await``), as real ones do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import aio_pika
import pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from connectors.rabbit.task.rmq_logger import Logger, LoggerConfig
from course.checks import confirm_verdict, current_test, eventually, holds_for, step
from course.proxy import BASIC_CONSUME, TcpProxy
from course.refusals import explain

pytestmark = pytest.mark.timeout(30)

DELIVERY = 5.0  # seconds an event may take to reach a handler
QUIET = 0.4  # seconds to watch that nothing (more) arrives, or that a call does not return
SETTLE = 2.0  # seconds a handled event may take to be acked
RECONNECT = 20.0  # seconds a logger may take to come back after its connection dropped
HANG = 2.0  # a _handler call still running this long after it began, when a wait fails, hangs
OUTAGE = 2.5  # seconds the broker cannot be reached, in the outages of the tests
OUTAGE_TRIES = 20  # connection attempts allowed during such an outage (a few a second at most)
BUSY = 0.25  # most CPU time a logger may use per second of wall time while its handlers await
BURST = 12  # events published at once after each reconnect
# How long the tests' handlers take, event after event: an early event takes longer than the
# next ones, so handlers that run at the same time finish out of order.
PACE = (0.03, 0.02, 0.01, 0.0)
WORK = (0.07, 0.05, 0.03, 0.01)  # the same, a little longer, in the test of order and CPU

# Steps that hang are remembered by these keys: a later test reaching one fails at once.
START, STOP, INFO, CRITICAL = "start()", "stop()", "info()", "critical()"

START_HINT = (
    "start() must declare the exchange, the queue and the bindings, register self._handler "
    "with queue.consume(...) and then return; it must not wait for events."
)
ONE_AT_A_TIME = (
    "Set channel.set_qos(prefetch_count=1) before consuming, and ack only once the handler is "
    "done: the broker then sends the next event only after that ack. (aio-pika runs _handler "
    "in a new task for each event it receives, so without that limit many run at once.)"
)
NO_ACK_AT_ONCE = (
    "Every event reached _handler already settled (consumed with no_ack=True, or acked before "
    "_handler ran): the broker then sends every event at once, whatever the prefetch_count, "
    "and aio-pika runs _handler for each of them at the same time. Consume with acks "
    "(`async with message.process():` in _handler, and prefetch_count=1), or hand the events "
    "to _handler one at a time yourself (`async for message in queue.iterator(...): await "
    "self._handler(message)`)."
)
SETTLE_HINT = (
    "Acknowledge each event once its handler is done: `async with message.process():` does it."
)
LOGGER_QUEUE = (
    "A logger's queue is its own: declare_queue(exclusive=True), with no name. RabbitMQ deletes "
    "it with the logger's connection."
)

_stop_hung = False  # a stop() that hung once is not awaited for long again, when cleaning up
_handler_hung = ""  # the test in which a _handler call hung (later tests then fail at once)


# --------------------------------------------------------------------------- helpers


def fail(message: str) -> NoReturn:
    """Fail the test with one plain line (no traceback: the message says it all)."""
    pytest.fail(" ".join(message.split()), pytrace=False)


def require(condition: object, message: str | Callable[[], str]) -> None:
    if not condition:
        fail(message() if callable(message) else message)


def yours(frame: FrameType) -> bool:
    """Whether ``frame`` runs the code under test (rmq_logger.py)."""
    return Path(frame.f_code.co_filename).name == "rmq_logger.py"


def describe(error: BaseException, text: bool = True) -> str:
    """``KeyError: 'x' (rmq_logger.py, line 42, in _handler)``: the error and where it was.

    ``text=False`` leaves out the error's own text (say, a broker's reply, already explained).
    """
    said = " ".join(f"{type(error).__name__}: {error}".split()) if text else type(error).__name__
    ours = [frame for frame, _ in traceback.walk_tb(error.__traceback__) if yours(frame)]
    if ours:
        said += f" (rmq_logger.py, line {ours[-1].f_lineno}, in {ours[-1].f_code.co_name})"
    return said


def coroutine_frames(coroutine: object) -> list[FrameType]:
    """The frames of a suspended coroutine and of what it awaits, outermost first."""
    frames = []
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    return frames


def waiting_at(task: asyncio.Task[Any] | None) -> str:
    """`` (it waits at rmq_logger.py, line 76, in _handler)``, or "" if it is not in your code."""
    if task is None:
        return ""
    ours = [frame for frame in coroutine_frames(task.get_coro()) if yours(frame)]
    if not ours:
        return ""
    return f" (it waits at rmq_logger.py, line {ours[-1].f_lineno}, in {ours[-1].f_code.co_name})"


def tasks_of_yours() -> list[str]:
    """The tasks running code of rmq_logger.py now: ``_listen (at rmq_logger.py, line 60)``."""
    found = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        ours = [frame for frame in coroutine_frames(task.get_coro()) if yours(frame)]
        if ours:
            found.append(
                f"{ours[0].f_code.co_name} (waiting at rmq_logger.py, line {ours[-1].f_lineno})"
            )
    return found


def finished_tasks_alive() -> int:
    """asyncio tasks that are done and still referenced (garbage collected first)."""
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, asyncio.Task) and thing.done())


class HandlerFailed(RuntimeError):
    """What the test's handle_info raises on the event ``{"boom": True}``."""


class Troubles:
    """Exceptions raised in the logger's own tasks (its consumer), which a test would not see.

    Installed as the event loop's exception handler; aio-pika reports a consumer that raised
    there. ``check()`` re-raises a stub's NotImplementedError in the test, so the failure names
    the method to write; the others are summed up in the failure message.
    """

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def add(self, error: BaseException) -> None:
        if isinstance(error, Exception) and all(error is not seen for seen in self.errors):
            self.errors.append(error)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if error is None:
            loop.default_exception_handler(context)
        else:
            self.add(error)  # reported in the test's failure, not as a traceback in the log

    def check(self) -> None:
        for error in self.errors:
            if isinstance(error, NotImplementedError):
                raise error

    def summary(self) -> str:
        own = [error for error in self.errors if not isinstance(error, HandlerFailed)]
        if not own:
            return ""
        return f" Meanwhile your _handler raised {describe(own[0])}."


class Record:
    """What one logger's handlers and its ``_handler`` saw, kept outside the logger.

    The test's handlers take a little time (they await, as real ones do). On ``{"boom": True}``
    handle_info raises; on an event with an ``"escalate"`` key it publishes that value itself,
    with ``self.critical(...)``; an event's ``"work"`` is how long its handler takes.
    """

    def __init__(self, troubles: Troubles) -> None:
        self.troubles = troubles
        self.info: list[Any] = []  # what handle_info got, in order
        self.critical: list[Any] = []  # what handle_critical got, in order
        self.in_order: list[Any] = []  # both levels, in the order the handlers finished
        self.messages: list[AbstractIncomingMessage] = []  # every delivery _handler got
        self.settled_on_arrival = 0  # deliveries already settled when _handler got them
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.booms = 0
        self.escalating: float | None = None  # since when a handler waits for self.critical()
        self.escalation_errors: list[BaseException] = []
        self.in_handler: dict[asyncio.Task[Any] | None, float] = {}  # calls not returned yet
        self.consuming_when_started: list[bool] = []  # per start(): had it asked to consume?

    # ---- what the test's subclass of your Logger calls

    async def delivered(
        self,
        message: AbstractIncomingMessage,
        handler: Callable[[AbstractIncomingMessage], Awaitable[None]],
    ) -> None:
        self.messages.append(message)
        if message.processed:
            self.settled_on_arrival += 1
        task = asyncio.current_task()
        self.in_handler[task] = time.monotonic()
        try:
            await handler(message)
        except Exception as error:
            self.troubles.add(error)
            raise
        finally:
            self.in_handler.pop(task, None)

    async def handle(self, level: str, data: Any, logger: Logger) -> None:
        event = data if isinstance(data, dict) else {}
        if level == "info" and event.get("boom"):
            self.booms += 1
            raise HandlerFailed("a handler failing on purpose")
        work = event.get("work", PACE[self.calls % len(PACE)])
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(work)
        finally:
            self.running -= 1
        (self.info if level == "info" else self.critical).append(data)
        self.in_order.append(data)
        if level == "info" and "escalate" in event:
            self.escalating = time.monotonic()
            try:
                await logger.critical(event["escalate"])
            except Exception as error:
                self.escalation_errors.append(error)
                raise
            finally:
                self.escalating = None

    # ---- what the tests read

    def heard(self) -> int:
        return len(self.info) + len(self.critical)

    def events(self) -> list[tuple[str | None, Any]]:
        """(routing key, decoded body) of every event that reached _handler (probes left out)."""
        return [
            (message.routing_key, body_of(message))
            for message in self.messages
            if not str(message.message_id or "").startswith("probe-")
        ]

    def unsettled(self) -> int:
        """Events that reached ``_handler`` and were neither acked, rejected nor no_ack."""
        return sum(1 for message in self.messages if not message.processed)

    def stuck(self) -> str:
        """Why nothing more is handled if a ``_handler`` call hangs; "" if none does."""
        now = time.monotonic()
        oldest = min(self.in_handler.items(), key=lambda item: item[1], default=None)
        if self.escalating is not None and now - self.escalating >= HANG:
            return (
                "Steps 3 and 4: handle_info called self.critical(...) to escalate an event, and "
                f"critical() has not returned {now - self.escalating:.0f} s later"
                f"{waiting_at(oldest[0] if oldest else None)}: the handler waits for "
                "critical(), so no other event is handled. A handler may publish: info() and "
                "critical() must not wait for the handlers (does critical() wait for a lock "
                "that _handler holds?)."
            )
        if oldest is not None and now - oldest[1] >= HANG:
            return (
                f"Step 3: _handler(message) has not returned {now - oldest[1]:.0f} s after it "
                f"got an event{waiting_at(oldest[0])}, and the logger handles no other event "
                "meanwhile. _handler must decode the event, call its handler, settle it and "
                "return."
            )
        return ""


def recording(record: Record, proxy: TcpProxy, starts: Iterator[int]) -> type[Logger]:
    """Your Logger, with handlers that report to ``record``; its start() notes whether the
    logger had asked the broker to consume (the proxy reads the frames) when it returned.

    ``starts`` numbers the start() calls of all the test's loggers: the n-th start() to return
    must find at least n ``basic.consume`` sent through the proxy. (Counting only the consumes
    made during one start() would credit it with another logger's late one.)"""

    class Recorder(Logger):
        async def start(self) -> None:
            await super().start()
            consuming = proxy.from_client[BASIC_CONSUME] >= next(starts)
            record.consuming_when_started.append(consuming)

        async def _handler(self, message: AbstractIncomingMessage) -> None:
            await record.delivered(message, super()._handler)

        async def handle_info(self, data: dict) -> None:
            await record.handle("info", data, self)

        async def handle_critical(self, data: dict) -> None:
            await record.handle("critical", data, self)

    return Recorder


async def call(
    awaitable: Any,
    label: str,
    hint: str = "",
    *,
    key: str | None = None,
    error_hint: str | None = None,
    timeout: float = 5.0,
) -> Any:
    """Run a step of the student's code: a hang or an exception fails with ``label``.

    ``hint`` follows a hang (and an exception, unless ``error_hint`` is given). A broker's
    refusal is explained instead of hinted at: it says what the broker would not do.
    """
    try:
        return await step(awaitable, label=label, timeout=timeout, hint=hint, key=key)
    except NotImplementedError:
        raise
    except Exception as error:
        raised = error
    refusal = refused_declaration(raised) or explain(raised)
    if refusal:
        fail(f"{label} raised {describe(raised, text=False)}: {refusal}")
    fail(f"{label} raised {describe(raised)}. {error_hint or hint}")


def refused_declaration(error: Exception) -> str:
    """What it means when the broker refuses the student's declaration of the bus or queue."""
    text = str(error)
    if "transient_nonexcl_queues" in text:
        return (
            "RabbitMQ 4.x (with the 4.3 defaults) refused to declare a queue that is neither "
            f"durable nor exclusive, and closed the connection. {LOGGER_QUEUE}"
        )
    if not isinstance(error, aio_pika.exceptions.ChannelPreconditionFailed):
        return ""
    if "inequivalent arg 'type' for exchange" in text:
        return (
            "The bus and your logger disagree on the exchange type: your exchange is not "
            "DIRECT. Declare it with ExchangeType.DIRECT."
        )
    if "for exchange" in text:
        return (
            "The bus was declared with other arguments than the plain ones (DIRECT, not "
            "durable, not auto-delete). Declare it with the default arguments (no "
            "durable=True, no auto_delete=True), so that every client agrees."
        )
    return ""


async def started(logger: Logger, which: str = "logger.start()") -> None:
    await call(logger.start(), f"Step 1: {which}", START_HINT, key=START)


class Bus:
    """The test's own hands on a bus: publish to it and listen to it, with plain aio-pika."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange) -> None:
        self.channel = channel
        self.exchange = exchange
        self.name = exchange.name

    @classmethod
    async def open(cls, amqp: Any, name: str) -> Bus:
        """Declare the exchange the plain way (DIRECT, default arguments), as any client would."""
        channel = await amqp.channel(on_return_raises=True)
        try:
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:
            refused = error
        else:
            return cls(channel, exchange)
        fail(
            f"Step 1: the broker refused the test's plain declaration of the bus {name!r} "
            f"(DIRECT, default arguments), because your logger declared it differently: "
            f"{refused}. {refused_declaration(refused)}"
        )

    async def publish(self, routing_key: str, data: dict | bytes) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        await self.exchange.publish(aio_pika.Message(body), routing_key, mandatory=False)

    async def send(self, events: list[tuple[str, dict]]) -> None:
        for level, data in events:
            await self.publish(level, data)

    async def routes(self, routing_key: str) -> bool:
        """Whether some queue is bound with ``routing_key`` (a mandatory publish comes back if
        none is). The probe is not JSON, and is not an event."""
        probe = aio_pika.Message(b"probe", message_id=f"probe-{routing_key}")
        try:
            await self.exchange.publish(probe, routing_key, mandatory=True)
        except aio_pika.exceptions.DeliveryError:
            return False
        return True

    async def tap(self, routing_key: str) -> list[AbstractIncomingMessage]:
        """A queue of the test's own, bound with ``routing_key``: what it gets lands in a list."""
        got: list[AbstractIncomingMessage] = []
        queue = await self.channel.declare_queue("", exclusive=True)
        await queue.bind(self.exchange, routing_key)

        async def keep(message: AbstractIncomingMessage) -> None:
            got.append(message)

        await queue.consume(keep, no_ack=True)
        return got


def body_of(message: AbstractIncomingMessage) -> Any:
    try:
        return json.loads(message.body)
    except ValueError:
        return None


def of_level(events: list[tuple[str, Any]], level: str) -> list[Any]:
    return [data for key, data in events if key == level]


def missing_from(have: list[Any], wanted: list[Any]) -> list[int]:
    """Indexes of ``wanted`` not found in ``have``, counting repeats (a multiset difference)."""
    left, missing = list(have), []
    for index, item in enumerate(wanted):
        if item in left:
            left.remove(item)
        else:
            missing.append(index)
    return missing


# --------------------------------------------------------------------------- why, in words


def unsettled_hint(heard: Record) -> str:
    """Why events stopped coming, or stay on the broker: _handler never settled them."""
    unsettled = heard.unsettled()
    if not unsettled:
        return ""
    return (
        f"_handler got {len(heard.messages)} event(s) and never settled {unsettled} of them: "
        "the broker counts them as unacknowledged, keeps them for this logger as long as it "
        f"lives, and sends it no more than its prefetch_count of them. {SETTLE_HINT}"
    )


def at_once_hint(heard: Record) -> str:
    """How to get events one at a time, from how they reached _handler."""
    if heard.messages and heard.settled_on_arrival == len(heard.messages):
        return NO_ACK_AT_ONCE
    return ONE_AT_A_TIME


def order_hint(heard: Record) -> str:
    """Why events came out of order, from what the handlers did."""
    if heard.most_at_once > 1:
        return (
            f"Every event arrived, but out of order: up to {heard.most_at_once} handlers ran "
            "at the same time, and a later event's handler finished first. A logger hands its "
            f"events to the handlers one at a time. {at_once_hint(heard)}"
        )
    return (
        "Every event arrived, but out of order, although the handlers ran one at a time. Hand "
        "the events to the handlers in the order they arrive from the queue."
    )


def why_not_heard(heard: Record, sent: list[tuple[str, Any]]) -> str:
    """Why the handlers did not get exactly ``sent`` ((level, data), in publish order), from
    what reached ``_handler`` and what the handlers got. Always gives a reason."""
    handled = heard.info + heard.critical
    raw = [item for item in handled if not isinstance(item, dict)]
    if raw:
        return (
            f"The handlers got {type(raw[0]).__name__} values such as {raw[0]!r}, not dicts: "
            "decode the body with json.loads(message.body) and pass the dict."
        )
    got = heard.events()
    if False in heard.consuming_when_started and missing_from(got, sent):
        return (
            "start() returned before the logger had asked the broker to consume its queue (no "
            "basic.consume had gone out yet), so events published right after it returned were "
            "not heard. Await the declaration, the bindings and queue.consume(...) in start() "
            "itself, before it returns (not in a task that runs later)."
        )
    if not got:
        return (
            "Nothing reached _handler. Check that start() binds the queue to the exchange named "
            "config.name with the routing keys 'info' AND 'critical' (the routing key is the "
            "level), and consumes it with self._handler."
        )
    if heard.escalation_errors:
        return (
            "handle_info called self.critical(...) to escalate an event, and critical() raised "
            f"{describe(heard.escalation_errors[0])}: a handler may publish."
        )
    unsettled = unsettled_hint(heard)
    if unsettled:
        return unsettled
    if not handled:
        return (
            f"_handler got {len(got)} event(s) but called neither handler. Call handle_info "
            "for the routing key 'info' and handle_critical for 'critical', with the body "
            "decoded from JSON."
        )
    info, critical = of_level(sent, "info"), of_level(sent, "critical")
    crossed = [item for item in heard.info if item in critical and item not in info] + [
        item for item in heard.critical if item in info and item not in critical
    ]
    if crossed:
        return (
            f"Events went to the wrong handler (e.g. {crossed[0]!r}). Choose the handler by "
            "message.routing_key ('info' -> handle_info, 'critical' -> handle_critical), "
            "not by what the body contains."
        )
    for level in ("info", "critical"):
        if of_level(sent, level) and not of_level(got, level):
            return (
                f"handle_{level} got nothing, and no {level} event reached _handler: is the "
                f"queue bound with {level!r} too?"
            )
    never = missing_from(got, sent)
    if never:
        return (
            f"_handler got {len(got)} event(s) of the {len(sent)} published; "
            f"{len(never)} never reached it, such as {sent[never[0]][1]!r}."
        )
    for level, data in sent:
        copies = sent.count((level, data))
        handled_copies = (heard.info if level == "info" else heard.critical).count(data)
        if copies > 1 and handled_copies < copies:
            return (
                f"The same {level} event {data!r} was published {copies} times and reached "
                f"_handler {copies} times, but handle_{level} got it {handled_copies} time(s): "
                "every delivery is an event to handle, even one equal to an earlier one (the "
                "same thing can happen twice). Do not drop repeats."
            )
    not_handled = missing_from(handled, [data for _, data in sent])
    if not_handled:
        level, data = sent[not_handled[0]]
        return (
            f"_handler got every event, but handle_{level} did not get {data!r}, which reached "
            f"_handler with the routing key {level!r}."
        )
    extra = missing_from([data for _, data in sent], handled)
    if extra:
        item = handled[extra[0]]
        return (
            f"The handlers got {item!r} {handled.count(item)} times, but it was published "
            f"{sum(1 for _, data in sent if data == item)} time(s) (it reached _handler "
            f"{sum(1 for _, data in got if data == item)} times)."
        )
    return order_hint(heard)


# --------------------------------------------------------------------------- waiting


def not_hung_before() -> None:
    if _handler_hung:
        fail(
            f"Step 3: _handler(message) hung in {_handler_hung} (see that failure first); this "
            "test needs it too."
        )


async def wait_for_handlers(
    records: list[Record],
    enough: Callable[[], bool | Awaitable[bool]],
    why: Callable[[], str],
    *,
    timeout: float = DELIVERY,
    interval: float = 0.02,
) -> None:
    """Poll ``enough`` until it holds; else fail with ``why()``, or with the hang of a
    ``_handler`` call if one hangs (once: later tests that wait for handlers fail at once)."""
    not_hung_before()

    async def check() -> bool:
        for record in records:
            record.troubles.check()
        result = enough()
        return bool(await result if inspect.isawaitable(result) else result)

    def message() -> str:
        global _handler_hung
        for record in records:
            stuck = record.stuck()
            if stuck:
                _handler_hung = current_test()
                return stuck
        return why()

    await eventually(check, timeout=timeout, message=message, interval=interval)


async def all_settled(heard: Record, label: str) -> None:
    """Every event that reached ``_handler`` is settled soon after its handler returned."""
    await eventually(
        lambda: not heard.unsettled(),
        timeout=SETTLE,
        message=lambda: (
            f"{label}: the handlers got every event, but {heard.unsettled()} of the "
            f"{len(heard.messages)} events that reached _handler were never acknowledged. The "
            "broker keeps an unacknowledged event for the logger as long as it lives (a logger "
            f"that runs for days holds every event it ever heard). {SETTLE_HINT}"
        ),
    )


async def until_heard(heard: Record, sent: list[tuple[str, Any]], label: str) -> None:
    """Wait until the handlers got as many events of each level as were sent, then compare."""
    info, critical = of_level(sent, "info"), of_level(sent, "critical")

    def enough() -> bool:
        return len(heard.info) >= len(info) and len(heard.critical) >= len(critical)

    def why() -> str:
        return (
            f"{label}: after {DELIVERY:g} s handle_info got {len(heard.info)} of {len(info)} "
            f"info events and handle_critical {len(heard.critical)} of {len(critical)} critical "
            f"events. {why_not_heard(heard, sent)}{heard.troubles.summary()}"
        )

    await wait_for_handlers([heard], enough, why)
    await all_settled(heard, label)
    for level, got, wanted in (("info", heard.info, info), ("critical", heard.critical, critical)):
        require(
            got == wanted,
            lambda got=got, wanted=wanted, level=level: (
                f"{label}: handle_{level} got {got!r}, but the {level} events sent were "
                f"{wanted!r}. {why_not_heard(heard, sent)}"
            ),
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def troubles() -> AsyncIterator[Troubles]:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    seen = Troubles()
    loop.set_exception_handler(seen)
    yield seen
    loop.set_exception_handler(previous)


@pytest.fixture
async def loggers(proxy, troubles) -> AsyncIterator[Callable[[str], tuple[Logger, Record]]]:
    """``make(bus)`` -> (your logger on that bus, connected through the proxy; what its
    handlers saw). Every logger made is stopped after the test."""
    global _stop_hung
    made: list[Logger] = []
    starts = itertools.count(1)

    def make(bus: str) -> tuple[Logger, Record]:
        record = Record(troubles)
        logger = recording(record, proxy, starts)(LoggerConfig(rabbit_url=proxy.url, name=bus))
        made.append(logger)
        return logger, record

    yield make
    for logger in made:
        # A stub's stop() raises NotImplementedError and a broken one may hang or raise: the
        # test has reported what matters already, so clean up quietly (the proxy closes too).
        try:
            await asyncio.wait_for(logger.stop(), 0.2 if _stop_hung else 3)
        except TimeoutError:
            _stop_hung = True
        except Exception:
            pass


@pytest.fixture
def client_log() -> Iterator[list[str]]:
    """What aio-pika and aiormq log during the test (e.g. why a reconnect failed)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):
                lines.append(record.getMessage())

    keep = Keep(logging.DEBUG)
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).addHandler(keep)
    yield lines
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).removeHandler(keep)


# --------------------------------------------------------------------------- the graded tests


@pytest.mark.task(2)
@pytest.mark.points(3)
async def test_info_and_critical_publish_json_with_their_routing_key_without_start(
    amqp, names, loggers, proxy
) -> None:
    bus = await Bus.open(amqp, names.exchange())
    info_queue, critical_queue = await bus.tap("info"), await bus.tap("critical")
    logger, _ = loggers(bus.name)  # never started: a logger that only publishes
    event = {"event": "signed_up", "user": {"id": 42, "tags": ["new"]}, "ok": True}

    await call(
        logger.info(event),
        "Step 4: logger.info(data) on a logger that was not started",
        "info() must work without start(): connect and declare the exchange yourself if "
        "that was not done yet.",
        key=INFO,
    )
    await eventually(
        lambda: info_queue,
        timeout=DELIVERY,
        message=(
            f"Step 4: logger.info(data) published nothing that reached a queue bound to the "
            f"exchange {bus.name!r} with the routing key 'info'. Publish to the exchange named "
            "config.name (not to channel.default_exchange), with routing_key='info'."
        ),
    )
    published = info_queue[0]
    require(
        body_of(published) is not None,
        f"Step 4: info() published the body {published.body[:200]!r}, which is not JSON. "
        "Encode the dict with json.dumps(data).encode(), not str(data).",
    )
    require(
        body_of(published) == event,
        f"Step 4: info(data) published {body_of(published)!r}, not the data it was given "
        f"({event!r}). Publish json.dumps(data) itself, without wrapping it.",
    )

    await call(
        logger.critical({"alarm": "disk full"}), "Step 4: logger.critical(data)", key=CRITICAL
    )
    await eventually(
        lambda: critical_queue,
        timeout=DELIVERY,
        message=(
            f"Step 4: logger.critical(data) published nothing that reached a queue bound to "
            f"{bus.name!r} with the routing key 'critical'. Use routing_key='critical'."
        ),
    )
    require(
        body_of(critical_queue[0]) == {"alarm": "disk full"},
        f"Step 4: critical(data) published {critical_queue[0].body[:200]!r}, "
        "not the data as JSON. Use json.dumps(data).encode().",
    )
    require(
        proxy.connections_seen == 1,
        f"Step 4: one info() and one critical() opened {proxy.connections_seen} connections to "
        "RabbitMQ: a new one for each event. Connect once, the first time (keep the connection "
        "in self.connection), and publish every later event over it: a connection costs "
        "several round trips to open, and memory on the broker while it stays open.",
    )
    await holds_for(
        lambda: len(info_queue) == 1,
        seconds=QUIET,
        message=(
            "Step 4: a critical event also reached the queue bound with 'info'. The exchange "
            "must be DIRECT (not FANOUT), and critical() must publish with routing_key="
            "'critical' only."
        ),
    )


@pytest.mark.task(2)
@pytest.mark.points(2)
async def test_the_bus_is_a_direct_exchange_named_after_the_config(amqp, names, loggers) -> None:
    name = names.exchange()
    logger, _ = loggers(name)
    await started(logger)

    async def redeclare(kind: aio_pika.ExchangeType, passive: bool = False) -> Exception | None:
        channel = await amqp.channel()
        try:
            await channel.declare_exchange(name, kind, passive=passive)
        except aio_pika.exceptions.AMQPError as error:
            return error
        with contextlib.suppress(Exception):
            await channel.close()
        return None

    missing = await redeclare(aio_pika.ExchangeType.DIRECT, passive=True)
    require(
        missing is None,
        f"Step 1: after start() there is no exchange named {name!r} (config.name). "
        "Declare the bus with channel.declare_exchange(self.config.name, ExchangeType.DIRECT).",
    )
    other_type = await redeclare(aio_pika.ExchangeType.FANOUT)
    require(
        other_type is not None,
        f"Step 1: the exchange {name!r} is not DIRECT: the broker let the test declare it as "
        "FANOUT. A fanout exchange ignores routing keys, so levels cannot be told apart. "
        "Declare it with ExchangeType.DIRECT.",
    )
    plain = await redeclare(aio_pika.ExchangeType.DIRECT)
    require(
        plain is None,
        f"Step 1: the broker refused a plain declaration of {name!r} (DIRECT, not durable, "
        f"not auto-delete): {plain}. Is it DIRECT? Declare it with the default arguments "
        "(no durable=True, no auto_delete=True), so that every client declaring the bus agrees.",
    )

    # A logger that only publishes declares the bus too, the same way, and has no queue on it.
    publisher_bus = names.exchange()
    publisher, _ = loggers(publisher_bus)
    await call(
        publisher.info({"first": True}),
        "Step 4: logger.info(data) on a bus nobody has declared yet (logger not started)",
        "info() must declare the exchange (DIRECT, named config.name) before publishing: "
        "publishing to an exchange that does not exist closes the channel.",
        key=INFO,
    )
    declared = await redeclare(aio_pika.ExchangeType.DIRECT)
    require(
        declared is None,
        f"Step 4: after info() on a new bus, the broker refused a plain DIRECT declaration of "
        f"it: {declared}. info() must declare the exchange: DIRECT, named config.name, "
        "default arguments.",
    )
    bus = await Bus.open(amqp, publisher_bus)
    require(
        not await bus.routes("info"),
        "Step 4: a logger that only published (never started) has a queue bound to the bus. "
        "info() must not create a queue or call start(): only a started logger listens.",
    )


@pytest.mark.task(2)
@pytest.mark.points(3)
async def test_each_handler_gets_the_events_of_its_level_as_dicts(amqp, names, loggers) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    disk_full = {"event": "disk_full", "free_bytes": 0, "ok": False}
    sent = [
        ("info", {"event": "signed_up", "user": {"id": 42, "tags": ["new", "beta"]}, "r": 0.5}),
        ("critical", disk_full),
        ("info", {"event": "paid", "amount": 10, "note": None, "text": "Grüße ✓"}),
        ("critical", disk_full),  # the same event again, twice: each one is handled
        ("critical", disk_full),
    ]
    await bus.send(sent)
    await until_heard(heard, sent, "Steps 1 and 3")


@pytest.mark.task(2)
@pytest.mark.points(2)
async def test_handlers_get_the_events_one_at_a_time_in_the_order_published(
    amqp, names, loggers
) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    sent = []
    for n in range(24):
        level = "critical" if n % 3 == 2 else "info"
        sent.append((level, {"n": n, "level": level, "work": WORK[n % len(WORK)]}))
    tasks_before = finished_tasks_alive()
    cpu, wall = time.process_time(), time.monotonic()
    await bus.send(sent)
    await wait_for_handlers(
        [heard],
        lambda: heard.heard() >= len(sent),
        lambda: (
            f"Steps 1 and 3: {len(sent)} events were published, and the handlers got "
            f"{heard.heard()} of them within {DELIVERY:g} s. {why_not_heard(heard, sent)}"
            f"{heard.troubles.summary()}"
        ),
    )
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await all_settled(heard, "Step 3")
    require(
        heard.most_at_once == 1,
        f"Steps 1 and 3: up to {heard.most_at_once} handlers ran at the same time, but a "
        "logger hands its events to the handlers one at a time, in the order they were "
        f"published, even when the handlers await. {at_once_hint(heard)}",
    )
    require(
        heard.in_order == [data for _, data in sent],
        lambda: (
            "Steps 1 and 3: the handlers got the events in another order than they were "
            f"published: {[event.get('n') for event in heard.in_order]}. {order_hint(heard)}"
        ),
    )
    require(
        cpu <= BUSY * wall,
        f"Steps 1 and 3: while the handlers only awaited (asyncio.sleep), the test's process "
        f"used {cpu:.2f} s of CPU in {wall:.2f} s: the logger kept the CPU busy while events "
        "waited for their turn. Does something poll in a loop (`while busy: await "
        "asyncio.sleep(0)`)? Let events wait without spinning: prefetch_count=1, or an "
        "asyncio.Lock, which wakes them in turn.",
    )
    kept = finished_tasks_alive() - tasks_before
    require(
        kept < len(sent) // 2,
        f"Step 3: after {len(sent)} events were handled, {kept} more finished asyncio tasks are "
        "alive than before them (after garbage collection): the logger keeps a task per event, "
        "and one that runs for days would keep every task it ever ran. Forget a task once it is "
        "done (keep tasks in a set, with task.add_done_callback(tasks.discard)), or keep none.",
    )


@pytest.mark.task(2)
@pytest.mark.points(3)
async def test_every_logger_on_the_bus_hears_every_event_in_order(amqp, names, loggers) -> None:
    bus_name = names.exchange()
    trio = [loggers(bus_name) for _ in range(3)]
    for number, (logger, _) in enumerate(trio, start=1):
        await call(
            logger.start(),
            f"Step 1: logger.start() (logger #{number} of 3 on the same bus)",
            START_HINT,
            key=START,
            error_hint=(
                "Every logger needs a queue of its own: declare it with no name and "
                "exclusive=True, not with a fixed name (two loggers cannot both own an "
                "exclusive queue of the same name)."
            ),
        )
    bus = await Bus.open(amqp, bus_name)
    sent = []
    for n in range(4):
        sent.append(("info", {"n": n}))
        if n % 2:
            sent.append(("critical", {"n": n // 2, "critical": True}))
    await bus.send(sent)
    records = [heard for _, heard in trio]

    def why() -> str:
        counts = " and ".join(", ".join(str(heard.heard()) for heard in records).rsplit(", ", 1))
        said = (
            f"Step 1: three started loggers on one bus must each hear all {len(sent)} events, "
            f"but their handlers got {counts} of them"
        )
        received = [len(heard.events()) for heard in records]
        if all(0 < count < len(sent) for count in received) and sum(received) == len(sent):
            shown = " and ".join(", ".join(map(str, received)).rsplit(", ", 1))
            because = (
                f"Their _handler got {shown} of the {len(sent)} events: the events were shared "
                "out between them, as happens when loggers share one queue (a fixed queue "
                "name). Every logger needs a temporary queue of its own, declared with no name "
                "and exclusive=True."
            )
        else:
            number, lagging = min(enumerate(records, start=1), key=lambda item: item[1].heard())
            because = f"Logger #{number}: {why_not_heard(lagging, sent)}"
        return f"{said}. {because}{records[0].troubles.summary()}"

    await wait_for_handlers(
        records, lambda: all(heard.heard() >= len(sent) for heard in records), why
    )
    for number, heard in enumerate(records, start=1):
        await until_heard(heard, sent, f"Step 1: logger #{number} of 3")


@pytest.mark.task(2)
@pytest.mark.points(1)
async def test_other_routing_keys_reach_no_handler(amqp, names, loggers) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    for key in ("debug", "warning", "INFO", "info.extra", ""):
        await bus.publish(key, {"routing_key": key})
    # Then one event of each level: once both have arrived, anything else would have, too.
    last = [("info", {"last": "info"}), ("critical", {"last": "critical"})]
    await bus.send(last)

    def both_arrived() -> bool:
        return all(data in heard.info + heard.critical for _, data in last)

    await wait_for_handlers(
        [heard],
        both_arrived,
        lambda: (
            "Steps 1 and 3: one info and one critical event were published after events with "
            "other routing keys, but they did not both reach the handlers. "
            f"{why_not_heard(heard, last)}{heard.troubles.summary()}"
        ),
    )
    require(
        heard.info == [{"last": "info"}] and heard.critical == [{"last": "critical"}],
        lambda: (
            "Steps 1 and 3: events with routing keys other than 'info' and 'critical' (debug, "
            f"warning, INFO, info.extra, '') reached the handlers: handle_info got "
            f"{heard.info!r}, handle_critical got {heard.critical!r}. Bind the queue with "
            "'info' and 'critical' only, on a DIRECT exchange, and in _handler call "
            "handle_critical only when message.routing_key == 'critical' (not in an else "
            "branch)."
        ),
    )


@pytest.mark.task(2)
@pytest.mark.points(3)
async def test_after_stop_the_logger_is_gone_from_the_bus(amqp, names, loggers, proxy) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    await bus.publish("info", {"before": "stop"})
    await until_heard(heard, [("info", {"before": "stop"})], "Steps 1 and 3")

    await call(logger.stop(), "Step 2: logger.stop()", key=STOP)
    await bus.publish("info", {"after": "stop"})
    await bus.publish("critical", {"after": "stop"})
    await holds_for(
        lambda: heard.heard() == 1,
        seconds=QUIET,
        message=lambda: (
            "Step 2: after stop() the logger still heard events: handle_info got "
            f"{heard.info[1:]!r}, handle_critical {heard.critical!r}. "
            "stop() must close the connection (await connection.close())."
        ),
    )
    await eventually(
        lambda: proxy.open_connections == 0,
        timeout=DELIVERY,
        message=lambda: (
            f"Step 2: after stop() the logger still has {proxy.open_connections} open "
            "connection(s) to RabbitMQ. Close the connection (await connection.close()), not "
            "just the channel; and close every connection you opened."
        ),
    )
    for key in ("info", "critical"):
        require(
            not await bus.routes(key),
            f"Step 2: after stop() a queue is still bound to the bus with the routing key "
            f"{key!r}: the logger's queue outlived it, and would fill up forever. Declare it "
            "exclusive=True (the broker deletes it with the connection), with no name.",
        )
    await eventually(
        lambda: not tasks_of_yours(),
        timeout=SETTLE,
        message=lambda: (
            f"Step 2: after stop() the logger still runs {', '.join(tasks_of_yours())}: a "
            "task of yours that stop() left running keeps the logger alive (it may connect "
            "again, and hear the bus) after stop(). stop() must end every task the logger "
            "started: cancel it, and await it."
        ),
    )
    loose = [queue for queue in proxy.queues_declared if not queue.passive and not queue.exclusive]
    if loose:
        queue = loose[0]
        flags = [f"{flag}=True" for flag in ("durable", "auto_delete") if getattr(queue, flag)]
        fail(
            f"Step 1: the logger declared its queue {' and '.join(flags) or 'with no flag'}, "
            "but not exclusive=True. "
            + (
                "A durable queue outlives the logger. "
                if queue.durable
                else "RabbitMQ 4.3 refuses a queue that is neither durable nor exclusive: "
                "start() fails there. "
            )
            + LOGGER_QUEUE
        )


@pytest.mark.task(2)
@pytest.mark.points(1)
async def test_stop_closes_every_connection_and_is_safe_before_start_and_twice(
    names, loggers, proxy
) -> None:
    logger, _ = loggers(names.exchange())
    hint = "stop() must do nothing when there is nothing to close (is self.connection None?)."
    await call(logger.stop(), "Step 2: logger.stop() before start()", hint, key=STOP)
    await call(logger.info({"first": True}), "Step 4: logger.info(data)", key=INFO)
    await started(logger, "logger.start() after info()")
    await call(logger.stop(), "Step 2: logger.stop()", key=STOP)
    await eventually(
        lambda: proxy.open_connections == 0,
        timeout=DELIVERY,
        message=lambda: (
            f"Step 2: a logger that published (info()), then started, then stopped still has "
            f"{proxy.open_connections} open connection(s) to RabbitMQ, of the "
            f"{proxy.connections_seen} it opened. stop() must close every connection the logger "
            "opened, the one info() opened included."
        ),
    )
    await call(logger.stop(), "Step 2: a second logger.stop()", hint, key=STOP)


async def require_confirmed(proxy: TcpProxy, published_before: int, call: str) -> None:
    """Right after ``call`` returned: its event must be at the broker, confirmed."""
    # The proxy reads the AMQP frames: a confirm crosses it before info() can see it.
    verdict = await confirm_verdict(proxy, published_before=published_before)
    if verdict == "nothing":
        fail(f"Step 4: {call} returned, and no event was published to the broker.")
    if verdict == "unconfirmed":
        fail(
            f"Step 4: {call} returned before the broker confirmed the event: its channel has no "
            "publisher confirms, so a lost event would vanish without a word. Use "
            "connection.channel() (confirms are on; do not pass publisher_confirms=False) and "
            "await exchange.publish(...)."
        )
    if verdict == "later":
        fail(
            f"Step 4: {call} returned before its event was published and confirmed; the publish "
            "came afterwards. Await exchange.publish(...) in info() itself, not in a task that "
            "runs later (no asyncio.ensure_future/create_task)."
        )


@pytest.mark.task(2)
@pytest.mark.points(3)
async def test_the_task_text_example_a_listener_hears_a_publisher(names, loggers, proxy) -> None:
    bus_name = names.exchange()
    listener, heard = loggers(bus_name)
    await started(listener)
    connections = proxy.open_connections
    # As in run_logger_client.py: a logger used only to publish, in `async with` (spelled
    # out, so that a stop() that hangs on the way out fails with a message, in time).
    hint = "info() and critical() must work without start(): a logger that only publishes."
    publisher = await loggers(bus_name)[0].__aenter__()
    published = proxy.publishes
    await call(
        publisher.info({"info": True}), "Step 4: logger.info({'info': True})", hint, key=INFO
    )
    await require_confirmed(proxy, published, "logger.info({'info': True})")
    published = proxy.publishes
    await call(
        publisher.critical({"critical": True}),
        "Step 4: logger.critical({'critical': True})",
        hint,
        key=CRITICAL,
    )
    await require_confirmed(proxy, published, "logger.critical({'critical': True})")
    await call(
        publisher.__aexit__(None, None, None),
        "Step 2: leaving `async with MyLogger(...) as logger:`, which calls logger.stop()",
        key=STOP,
    )
    await until_heard(
        heard,
        [("info", {"info": True}), ("critical", {"critical": True})],
        "Steps 1 to 4, as in the task",
    )
    await eventually(
        lambda: proxy.open_connections <= connections,
        timeout=DELIVERY,
        message=lambda: (
            "Step 2: leaving `async with` calls stop(), but the publishing logger's connection "
            f"stayed open ({proxy.open_connections} open, {connections} before it published). "
            "stop() must close the connection that info() opened, too."
        ),
    )


@pytest.mark.task(2)
@pytest.mark.points(2)
async def test_info_returns_once_the_broker_has_the_event_and_keeps_its_connection(
    amqp, names, loggers, proxy
) -> None:
    bus = await Bus.open(amqp, names.exchange())
    tap = await bus.tap("info")
    logger, heard = loggers(bus.name)
    # The first events of a program often come at once, before the logger has connected.
    await call(
        asyncio.gather(*(logger.info({"n": n}) for n in range(8))),
        "Step 4: 8 calls of logger.info(data) at once, on a logger not connected yet",
        key=INFO,
    )
    await require_confirmed(proxy, published_before=0, call="info()")
    require(
        proxy.connections_seen == 1,
        lambda: (
            f"Step 4: 8 calls of info() made at once on a logger not connected yet opened "
            f"{proxy.connections_seen} connections to RabbitMQ ({proxy.open_connections} still "
            "open): while the first call was still connecting, the others found no connection "
            "yet and connected too. Connect under an asyncio.Lock (`async with self._lock:` "
            "around the `if self.connection is None:` and the connecting), so that the first "
            "call connects and the others wait for it."
        ),
    )

    # The network stalls: an event on its way cannot reach the broker, nor its confirm come back.
    proxy.pause()
    try:
        publishing = asyncio.ensure_future(logger.info({"n": 8}))
        await asyncio.wait({publishing}, timeout=QUIET)
    finally:
        proxy.resume()
    if publishing.done():
        error = None if publishing.cancelled() else publishing.exception()
        fail(
            "Step 4: info() returned while the network to RabbitMQ was stalled, so before the "
            "broker had the event"
            + (f" (it raised {describe(error)})" if error else "")
            + ". It must return only once the broker has confirmed the event, so that a lost "
            "event raises in the caller: await exchange.publish(...) on a channel with "
            "publisher confirms (connection.channel() has them on by default); do not hand "
            "the publish to asyncio.ensure_future/create_task, nor open the channel with "
            "publisher_confirms=False."
        )
    await call(publishing, "Step 4: logger.info(data) once the network came back", key=INFO)

    # A started logger publishes too: one connection to publish, at most one more to listen.
    await started(logger)
    channels = proxy.channels_opened
    for n in range(9, 19):
        await call(logger.info({"n": n}), "Step 4: logger.info(data) on a started logger", key=INFO)
    await eventually(
        lambda: len(tap) >= 19,
        timeout=DELIVERY,
        message=lambda: f"Step 4: 19 info events were published, and {len(tap)} reached the bus.",
    )
    require(
        proxy.connections_seen <= 2,
        f"Step 4: a logger that published 19 events and started listening opened "
        f"{proxy.connections_seen} connections to RabbitMQ. Keep one connection for "
        "publishing (and, if you like, one more for listening), and publish every event over "
        "it: do not connect again for each event.",
    )
    opened = proxy.channels_opened - channels
    require(
        opened <= 2,
        f"Step 4: 10 calls of info() opened {opened} channels (and {proxy.open_channels} "
        "channels are open now): a channel for each event. Open a channel once, with the "
        "connection, and publish every event on it: each channel costs a round trip to open, "
        "and a connection allows at most 2047 of them (channel_max), so after about 2000 "
        "events info() would fail with NOT_ALLOWED.",
    )
    await until_heard(
        heard, [("info", {"n": n}) for n in range(9, 19)], "Steps 1 to 4, its own events"
    )

    # An outage: the connection drops and RabbitMQ cannot be reached. The event cannot reach the
    # broker: info() must raise (or wait), never return as if the broker had it.
    proxy.refuse()
    began = time.monotonic()
    try:
        publishing = asyncio.ensure_future(logger.info({"n": "in the outage"}))
        await asyncio.wait({publishing}, timeout=OUTAGE)
    finally:
        proxy.accept()
    if publishing.done() and not publishing.cancelled() and publishing.exception() is None:
        fail(
            f"Step 4: info() returned normally {time.monotonic() - began:.1f} s after the "
            "connection dropped, while RabbitMQ could not be reached: the event was lost, and "
            "the caller was not told. Let the error of the publish reach the caller (do not "
            "catch it and carry on, nor give up quietly after a timeout): the caller decides "
            "what a lost event means."
        )
    publishing.cancel()
    with contextlib.suppress(BaseException):
        await publishing


@pytest.mark.task(2)
@pytest.mark.points(1)
async def test_an_event_from_another_client_library_reaches_the_logger(
    rabbitmq_url, names, loggers
) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    sent = [(level, {"from": "pika", "level": level}) for level in ("info", "critical")]

    def publish_with_pika() -> str:
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        try:
            channel = connection.channel()
            channel.exchange_declare(exchange=bus_name, exchange_type="direct")
            for level, data in sent:
                channel.basic_publish(exchange=bus_name, routing_key=level, body=json.dumps(data))
        except pika.exceptions.ChannelClosedByBroker as error:
            return str(error)
        finally:
            if connection.is_open:
                connection.close()
        return ""

    refused = await asyncio.to_thread(publish_with_pika)
    require(
        not refused,
        f"Step 1: a pika client declared the bus the plain way (DIRECT, not durable, not "
        f"auto-delete) and the broker refused: {refused}. Declare the exchange with the "
        "default arguments, so that any client can join the bus.",
    )
    await until_heard(
        heard, sent, "Steps 1 and 3, events published with pika (JSON bodies, no content type)"
    )


@pytest.mark.task(2)
@pytest.mark.points(1)
async def test_a_handler_may_publish_an_event(amqp, names, loggers) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    # The test's handle_info escalates the first event: it calls self.critical(...) with it.
    escalated = {"disk": "almost full", "escalated": True}
    published = [("info", {"disk": "almost full", "escalate": escalated}), ("info", {"ok": 1})]
    await bus.send(published)
    sent = [*published, ("critical", escalated)]  # the last one by the logger itself
    await until_heard(heard, sent, "Steps 3 and 4, a handler that calls self.critical(...)")


# --------------------------------------------------------------------------- starred


@pytest.mark.task(2)
@pytest.mark.points(2)
@pytest.mark.stretch
@pytest.mark.skip(reason="starred: delete this line to try it")
async def test_bad_events_do_not_stop_the_logger(amqp, names, loggers) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    for body in (b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"42", b"null"):
        await bus.publish("info", body)
    await bus.publish("critical", b"{broken")
    await bus.publish("info", {"boom": True})
    good = [{"after": "the bad ones", "n": n} for n in range(2)]
    for event in good:
        await bus.publish("info", event)

    def why() -> str:
        said = (
            "Step 3 (starred): after events whose body is not a JSON object, and one whose "
            f"handler raised, the logger stopped hearing the bus: handle_info got {heard.info!r}."
        )
        again = sum(1 for message in heard.messages if message.redelivered)
        if again > 1:
            return (
                f"{said} A bad event came back again and again ({again} deliveries so far), "
                "ahead of the others: reject it without requeue (message.process() does; "
                "message.process(requeue=True) or message.nack() put it back at the head of "
                "the queue, and it loops forever)."
            )
        return (
            f"{said} In _handler, a bad event must be settled (rejected) and the logger must "
            "carry on: `async with message.process():` rejects the message for you when an "
            f"exception escapes from the block. {unsettled_hint(heard)}{heard.troubles.summary()}"
        )

    await wait_for_handlers([heard], lambda: len(heard.info) >= len(good), why)
    strays = [event for event in heard.info if event not in good]
    require(
        not strays and not heard.critical,
        lambda: (
            "Step 3 (starred): only events whose body is a JSON object may reach the handlers, "
            f"but they also got {strays + heard.critical!r}. Check that the decoded body is a "
            "dict."
        ),
    )
    require(
        heard.info == good,
        lambda: f"Step 3 (starred): handle_info got {heard.info!r}. {order_hint(heard)}",
    )
    await holds_for(
        lambda: heard.booms == 1,
        seconds=QUIET * 2,
        message=lambda: (
            f"Step 3 (starred): the event whose handler raised was handled {heard.booms} "
            "times: it came back again and again. Reject it without requeue "
            "(message.process() does; message.process(requeue=True) or message.nack() put it "
            "back in the queue, and it loops forever)."
        ),
    )
    await all_settled(heard, "Step 3 (starred), bad events")


async def heard_again(heard: Record, bus: Bus, phase: str, deaf: Callable[[], str]) -> None:
    """After ``phase``, the handlers of both levels hear the bus again within RECONNECT."""
    sent = 0

    def tagged(events: list[Any]) -> bool:
        return any(isinstance(event, dict) and event.get("after") == phase for event in events)

    async def back() -> bool:
        # Events sent while it is away are lost with its temporary queue: keep sending. Only
        # those sent after the break count, so the logger must have come back to hear them.
        nonlocal sent
        sent += 1
        await bus.publish("info", {"after": phase, "n": sent})
        await bus.publish("critical", {"after": phase, "n": sent})
        return tagged(heard.info) and tagged(heard.critical)

    def why() -> str:
        levels = [level for level in ("info", "critical") if tagged(getattr(heard, level))]
        if len(levels) == 1:
            other = "critical" if levels == ["info"] else "info"
            return (
                f"Step 1 (starred): after {phase}, handle_{levels[0]} heard the bus again, but "
                f"handle_{other} did not within {RECONNECT:g} s ({other} events were published "
                f"all along): after a reconnect, bind the new queue with both 'info' and "
                f"'critical'.{heard.troubles.summary()}"
            )
        return deaf() + heard.troubles.summary()

    await wait_for_handlers([heard], back, why, timeout=RECONNECT, interval=0.25)


async def publishes_again(logger: Logger, phase: str) -> None:
    """After ``phase``, the logger's info() works again within RECONNECT."""
    deadline, error = time.monotonic() + RECONNECT, None
    while time.monotonic() < deadline:
        try:
            await step(
                logger.info({"published": "by the logger", "after": phase}),
                label=f"Step 4 (starred): logger.info(data) after {phase}",
                key=INFO,
            )
        except Exception as raised:  # it may take a moment to reconnect: try again
            error = raised
            await asyncio.sleep(0.25)
        else:
            return
    fail(
        f"Step 4 (starred): after {phase}, the logger heard the bus again, but its info() still "
        f"failed {RECONNECT:g} s later{f' ({describe(error)})' if error else ''}. The "
        "connection that info() publishes on must come back too: connect_robust(...) "
        "reconnects it; a plain aio_pika.connect(...) does not."
    )


async def one_burst(heard: Record, bus: Bus, phase: str) -> None:
    """After ``phase``, a burst of events is handled exactly once each, one at a time, in order."""
    heard.most_at_once = heard.running
    sent = [("critical" if n % 3 == 2 else "info", {"burst": phase, "n": n}) for n in range(BURST)]
    await bus.send(sent)

    def burst() -> list[Any]:
        return [e for e in heard.in_order if isinstance(e, dict) and e.get("burst") == phase]

    await wait_for_handlers(
        [heard],
        lambda: len(burst()) >= BURST,
        lambda: (
            f"Step 1 (starred): after {phase}, {BURST} events were published at once, and the "
            f"handlers got {len(burst())} of them within {DELIVERY:g} s. "
            f"{why_not_heard(heard, sent)}{heard.troubles.summary()}"
        ),
    )

    def twice() -> str:
        got = burst()
        again = next((event for event in got if got.count(event) > 1), got[-1])
        consumers = {
            message.consumer_tag
            for message in heard.messages
            if isinstance(body_of(message), dict) and body_of(message).get("burst") == phase
        }
        return (
            f"Step 1 (starred): after {phase}, {BURST} events were published once each, and "
            f"the handlers got {len(got)} (such as {again!r} {got.count(again)} times), through "
            f"{len(consumers)} consumers at once. After each reconnect the logger must consume "
            "one new queue, once: is a reconnect callback added again on every reconnect (or "
            "start() called again from one)?"
        )

    await holds_for(lambda: len(burst()) == BURST, seconds=QUIET, message=twice)
    require(
        heard.most_at_once == 1,
        f"Step 1 (starred): after {phase}, up to {heard.most_at_once} handlers ran at the same "
        "time: after a reconnect too, the events must come one at a time, in order. Set "
        "prefetch_count=1 on the new channel (connect_robust restores it on its channels; a "
        "loop of your own must call set_qos again).",
    )
    require(
        burst() == [data for _, data in sent],
        lambda: (
            f"Step 1 (starred): after {phase}, the handlers got the events in another order "
            f"than they were published: {[event.get('n') for event in burst()]}. "
            f"{order_hint(heard)}"
        ),
    )


@pytest.mark.task(2)
@pytest.mark.points(2)
@pytest.mark.stretch
@pytest.mark.timeout(120)
@pytest.mark.skip(reason="starred: delete this line to try it")
async def test_events_flow_again_after_a_reconnect(amqp, names, loggers, proxy, client_log) -> None:
    bus_name = names.exchange()
    logger, heard = loggers(bus_name)
    await started(logger)
    bus = await Bus.open(amqp, bus_name)
    # It publishes too, before the network breaks: both of its jobs must come back.
    await call(logger.info({"before": "the outage"}), "Step 4: logger.info(data)", key=INFO)
    await until_heard(heard, [("info", {"before": "the outage"})], "Steps 1 and 3")

    # 1. An outage: the connections drop on both sides (the broker sees them go, and deletes
    # the logger's queue), and for OUTAGE seconds no new connection gets through.
    phase = "an outage"
    seen = proxy.connections_seen
    proxy.refuse()
    await asyncio.sleep(OUTAGE)  # how long the outage lasts (not a wait for something)
    proxy.accept()
    tries = proxy.connections_seen - seen
    require(
        tries <= OUTAGE_TRIES,
        f"Step 1 (starred): during a {OUTAGE:g} s outage the logger tried to connect {tries} "
        "times: it tries again at once after each failure, and a broker coming back from an "
        "outage meets a storm of connections from all its clients. Pause between tries: "
        "connect_robust waits reconnect_interval (5 s by default); a loop of your own should "
        "sleep a second or more, doubling the pause after each failure.",
    )
    await heard_again(
        heard,
        bus,
        phase,
        lambda: (
            f"Step 1 (starred): after {phase} (the connection dropped, and RabbitMQ could not "
            f"be reached for {OUTAGE:g} s), the logger did not hear the bus again within "
            f"{RECONNECT:g} s (info and critical events were published all along). Reconnect "
            "when the connection drops: aio_pika.connect_robust(...) reconnects and restores "
            "the channel and the exchange; then declare, bind and consume a new queue from a "
            "reconnect callback (connection.reconnect_callbacks.add(...)). Or reconnect, and "
            "declare, bind and consume again, yourself."
        ),
    )
    await publishes_again(logger, phase)
    await one_burst(heard, bus, phase)

    # 2. A network partition: the logger's side dies, the broker's side stays open and silent,
    # and the broker keeps the old connection's exclusive queue until its heartbeat times out.
    phase = "a network partition"
    client_log.clear()
    proxy.cut(half_open=True)

    def deaf() -> str:
        locked = any("RESOURCE_LOCKED" in line for line in client_log)
        said = (
            "Step 1 (starred): after a network partition (your side of the connection died, "
            "RabbitMQ kept its side open, and with it the old connection's exclusive queue), "
            f"the logger did not hear the bus again within {RECONNECT:g} s."
        )
        if locked:
            return (
                f"{said} RabbitMQ refused to declare the old queue again (RESOURCE_LOCKED: it "
                "still belongs to the old connection): aio-pika's connect_robust re-declares a "
                "queue under its old name after a reconnect. Declare the queue with "
                "robust=False, and after a reconnect (connection.reconnect_callbacks) declare "
                "a new one with no name, bind it and consume it."
            )
        return (
            f"{said} After a reconnect, declare a new queue (no name, exclusive=True), bind it "
            "and consume it: the broker may still hold the old one for a minute or more."
        )

    await heard_again(heard, bus, phase, deaf)
    await publishes_again(logger, phase)
    await one_burst(heard, bus, phase)

"""Helpers for tests that speak to students: wait with a deadline, fail in plain words.

Graded tests call the student's code through :func:`step`, so that a method that hangs or is
missing fails fast with the task step it belongs to, instead of a timeout traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# Steps that hung, and the test where they did: a later test that needs the same step fails at
# once, pointing there, instead of waiting out the same timeout again.
_hung: dict[str, str] = {}


def current_test() -> str:
    """The running test's name, e.g. ``TestWorker::test_cancel``."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    return node.split("::", 1)[-1] if node else "an earlier test"


async def step(
    awaitable: Awaitable[T],
    *,
    label: str,
    timeout: float = 5.0,
    hint: str = "",
    key: str | None = None,
) -> T:
    """Await student code for at most ``timeout`` seconds.

    ``label`` names the task step and the call, e.g. ``"Step 2: worker.start()"``. A hang fails
    the test with that label and ``hint``; ``NotImplementedError`` is left to the course plugin,
    which names the method that raised it. Once a step (``key``, by default the label) has
    hung, later tests that reach it fail at once with a pointer to the first hang.
    """
    key = key or label
    if key in _hung:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: no "coroutine was never awaited" warning
        pytest.fail(
            f"{label} hung in {_hung[key]} (see that failure first); this test needs it too.",
            pytrace=False,
        )
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise  # the code under test raised TimeoutError itself: that is not a hang
        _hung[key] = current_test()
    pytest.fail(f"{label} did not finish within {timeout:g} s. {hint}".strip(), pytrace=False)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it holds; fail with ``message`` if it does not in ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message, pytrace=False)
        await asyncio.sleep(interval)


async def holds_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    seconds: float,
    message: str | Callable[[], str],
    interval: float = 0.02,
) -> None:
    """Check that ``condition`` keeps holding for ``seconds`` (e.g. "nothing more arrives")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if not result:
            pytest.fail(message() if callable(message) else message, pytrace=False)
        await asyncio.sleep(interval)


async def confirm_verdict(proxy: Any, published_before: int, grace: float = 1.0) -> str:
    """Right after a call that must return only once the broker confirmed its publish.

    ``proxy`` is the :class:`course.proxy.TcpProxy` the code under test goes through; it reads
    the AMQP frames, and a confirm crosses it before the caller can see it, so at the moment the
    call returns its publish must be there and confirmed. Returns:

    * ``"confirmed"``: it was;
    * ``"unconfirmed"``: a publish went out on a channel without publisher confirms;
    * ``"later"``: the call returned first, and its publish (confirmed) came afterwards, for
      example from a task it left running (``asyncio.ensure_future``);
    * ``"nothing"``: no publish reached the proxy at all within ``grace`` seconds.
    """

    def confirmed() -> bool:
        return proxy.publishes > published_before and proxy.unconfirmed == 0

    if confirmed():
        return "confirmed"
    with contextlib.suppress(pytest.fail.Exception):  # a poll with a deadline, not a verdict
        await eventually(confirmed, timeout=grace, message="")
    if proxy.publishes <= published_before:
        return "nothing"
    return "unconfirmed" if proxy.unconfirmed else "later"

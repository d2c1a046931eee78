"""Helpers for tests that speak to students: wait with a deadline, fail in plain words.

Graded tests call the student's code through :func:`step`, so that a method that hangs or is
missing fails fast with the task step it belongs to, instead of a timeout traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


async def step(
    awaitable: Awaitable[T],
    *,
    label: str,
    timeout: float = 5.0,
    hint: str = "",
) -> T:
    """Await student code for at most ``timeout`` seconds.

    ``label`` names the task step and the call, e.g. ``"Step 2: worker.start()"``. A hang fails
    the test with that label and ``hint``; ``NotImplementedError`` is left to the course plugin,
    which names the method that raised it.
    """
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        pytest.fail(
            f"{label} did not finish within {timeout:g} s. {hint}".strip(),
            pytrace=False,
        )


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

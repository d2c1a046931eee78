"""course.checks.step: a hang fails once and is remembered; code raising TimeoutError is no hang."""

import asyncio

import pytest

from course.checks import step


async def raises_timeout():
    raise TimeoutError("call to int_sum timed out after 1 s")


async def test_own_timeout_error_is_not_a_hang():
    with pytest.raises(TimeoutError, match="int_sum"):
        await step(raises_timeout(), label="Client step 4: client.call()", timeout=2)


async def test_a_hang_is_a_hang():
    with pytest.raises(pytest.fail.Exception, match=r"did not finish within 0\.2 s"):
        await step(asyncio.sleep(5), label="Step X: hang", timeout=0.2)
    with pytest.raises(pytest.fail.Exception, match="hung in"):
        await step(asyncio.sleep(0), label="Step X: hang", timeout=0.2)

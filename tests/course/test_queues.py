"""`make queues`: ready and unacked counts without the management UI, from a trusted source."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aio_pika
import pytest

from course import impl
from course.checks import eventually

pytestmark = pytest.mark.timeout(60)


async def test_it_shows_ready_and_unacked_counts_of_the_brokers_queues(broker, names) -> None:
    queue = names.queue()
    connection = await aio_pika.connect(broker.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        for number in range(3):
            await channel.default_exchange.publish(aio_pika.Message(b"%d" % number), queue)
        held = await declared.get(timeout=5)  # taken and not acked: unacknowledged
        env = {**os.environ, "RABBITMQ_URL": broker.url}
        if broker.management_url:
            env["RABBITMQ_MANAGEMENT_URL"] = broker.management_url
        outputs: list[str] = []

        async def listed() -> bool:
            result = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "course.queues"], cwd=impl.ROOT, env=env,
                capture_output=True, text=True, timeout=45, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout)
            row = next((line.split() for line in result.stdout.splitlines() if queue in line), [])
            return row == [queue, "2", "1", "0", "yes"]

        # A management API's counts lag a second or so behind (its statistics interval).
        await eventually(
            listed, timeout=15, interval=0.5, message=lambda: f"2 ready, 1 unacked:\n{outputs[-1]}"
        )
        await held.ack()
    assert "AMQP" not in outputs[-1].splitlines()[0], "a trusted source should be found here"
    password = aio_pika.connection.URL(broker.url).password
    assert f":{password}@" not in outputs[-1]

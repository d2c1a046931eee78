"""Bonus: Task 1's reference Worker on a quorum queue of a 3-node cluster (issue 13, item 4).

Not part of a student's points (no task or points marker): it checks the reference's
``WorkerConfig(queue_type="quorum")`` option on a real cluster that this module starts (and stops)
itself, of the same major version as the session's broker.

Two reference Workers share the quorum queue: one connected to node 1, which holds the queue's
leader, the other to node 2. A WorkerClient on node 3 puts numbered tasks. Node 1 is SIGKILLed
mid-run: the Worker on node 2 must go on while the queue elects a new leader, the Worker on node 1
must come back by itself once node 1 is started again (its connection is robust, to that one
URL), and every task whose put() returned must be handled at least once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from course import impl
from course.broker.cluster import Cluster
from course.broker.node import node_ctl
from course.checks import eventually

ref = impl.load(impl.REFERENCE_DIR, "rmq_worker")

# The run's one cluster, shared with the cluster lesson (tests/conftest.py).
pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("cluster")]


@pytest.fixture(scope="module")
def quorum_option() -> None:
    """Fail at once, before a cluster is started, when the reference lacks the option."""
    fields = {field.name for field in dataclasses.fields(ref.WorkerConfig)}
    if "queue_type" not in fields:
        pytest.fail(
            "the reference WorkerConfig has no queue_type option (issue 13, item 4 asks for "
            'queue_type="classic" | "quorum")',
            pytrace=False,
        )


class Handled:
    """Which worker handled which task, and when."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, int]] = []

    def numbers(self, worker: str | None = None, since: float = 0.0) -> list[int]:
        return [n for at, who, n in self.seen if (worker in (None, who)) and at >= since]


def worker(url: str, queue: str, name: str, handled: Handled) -> ref.Worker:
    class Recording(ref.Worker):
        async def handler(self, msg: AbstractIncomingMessage) -> None:
            await asyncio.sleep(0.02)
            handled.seen.append((time.monotonic(), name, json.loads(msg.body)["n"]))

    config = ref.WorkerConfig(url, queue, capacity=5, queue_type="quorum", reconnect_interval=0.5)
    return Recording(config)


def client(url: str, queue: str) -> ref.WorkerClient:
    """The reference client: with the same queue_type when it has the option."""
    fields = {field.name for field in dataclasses.fields(ref.WorkerClientConfig)}
    extra = {"queue_type": "quorum"} if "queue_type" in fields else {}
    return ref.WorkerClient(ref.WorkerClientConfig(url, queue, **extra))


async def put(tasks: ref.WorkerClient, n: int) -> int:
    """put() task n until the broker takes it; returns how many times it was refused."""
    refused = 0
    while True:
        try:
            await asyncio.wait_for(tasks.put({"n": n}), timeout=10)
            return refused
        except (aio_pika.exceptions.DeliveryError, ConnectionError, TimeoutError):
            refused += 1  # a nack while the queue elects a new leader (3.x), or a stall
            assert refused < 100, f"put() of task {n} kept failing across the failover"
            await asyncio.sleep(0.1)


def queue_info(node: dict, queue: str) -> dict:
    output = node_ctl(node, "list_queues", "name", "type", "leader", "members", "online",
                      "--formatter", "json")  # fmt: skip
    return next((row for row in json.loads(output) if row["name"] == queue), {})


async def test_the_reference_worker_on_a_quorum_queue_survives_the_leaders_node(
    quorum_option: None, cluster_up: Cluster, request: pytest.FixtureRequest
) -> None:
    cluster = cluster_up
    queue = "course.reference.cluster.tasks"
    handled = Handled()
    on_leader = worker(cluster.urls[0], queue, "node 1", handled)
    await on_leader.start()  # declares the queue through node 1: its leader is there
    on_follower = worker(cluster.urls[1], queue, "node 2", handled)
    tasks = client(cluster.urls[2], queue)
    try:
        await on_follower.start()
        info = await asyncio.to_thread(queue_info, cluster.nodes[2], queue)
        if info.get("type") != "quorum" or len(info.get("members", [])) != 3:
            pytest.fail(
                'WorkerConfig(queue_type="quorum") should declare a quorum queue with a member '
                f"on each of the three nodes; rabbitmqctl shows {info}",
                pytrace=False,
            )
        assert info["leader"] == cluster.names[0], f"the leader should be on node 1: {info}"

        refused = 0
        for n in range(1, 101):
            refused += await put(tasks, n)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, 0)
        for n in range(101, 201):
            refused += await put(tasks, n)
        await eventually(
            lambda: any(n > 100 for n in handled.numbers("node 2", since=killed_at)),
            timeout=20,
            message="with node 1 (the leader) down, the Worker on node 2 handled no new task: "
            "the quorum queue should have a new leader, and the consumer keep consuming",
        )
        failover = min(at for at, who, n in handled.seen if at >= killed_at and n > 100)
        revived = await asyncio.to_thread(cluster.revive, 0)
        back_at = time.monotonic()
        for n in range(201, 301):
            refused += await put(tasks, n)
        await eventually(
            lambda: set(range(1, 301)) <= set(handled.numbers()),
            timeout=30,
            message=lambda: (
                "tasks whose put() returned were never handled: "
                f"{sorted(set(range(1, 301)) - set(handled.numbers()))[:20]}"
            ),
        )
        await eventually(
            lambda: bool(handled.numbers("node 1", since=back_at)),
            timeout=20,
            message="the Worker connected to node 1 did not come back after node 1 was started "
            "again (its robust connection should reconnect and consume again)",
        )
    finally:
        await tasks.stop()
        await on_follower.stop()
        await on_leader.stop()
    done = handled.numbers()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"reference Worker on a quorum queue: 300 put, {len(set(done))} handled, "
                f"{len(done) - len(set(done))} duplicates, {refused} put() retries; node 2 "
                f"handled a new task {failover - killed_at:.2f} s after node 1 (the leader) "
                f"died; node 1 back in {revived:.1f} s"
            )

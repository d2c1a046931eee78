"""Lesson cluster: quorum queues on a 3-node cluster, and a ledger of 1,000 tasks across a crash.

The module starts its own brokers, never the session's: a private node for the single-node
check, and the run's one 3-node cluster (:class:`course.broker.cluster.Cluster`, the ``cluster``
fixture of ``tests/conftest.py``), shared with the reference Worker's cluster test and stopped at
the end of the run, pass or fail. The install follows the session broker's major
version: on 4.x the Debian 13 chroot's RabbitMQ 4.x with the 4.3 defaults, else the local
``rabbitmq-server`` (3.10.8 on Debian 12). The lesson scripts run as subprocesses, as a student
runs them, with ``RABBITMQ_NODES`` listing the cluster's nodes.

The ledger (Jepsen's way): a publisher with confirms sends 1,000 numbered tasks; a worker of
capacity 10 does them; mid-run the node that holds the queue's leader is SIGKILLed and started
again. Every task the broker confirmed must be done at least once; the duplicates and the
failover times are reported on the terminal. ``LESSONS_DIR`` runs the checks on a copy of
``connectors/rabbit`` (a deliberately broken one, to see them go red).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import lesson_scripts
import pytest
import pytest_asyncio

from course.broker import PrivateNode, free_port
from course.broker.cluster import Cluster
from course.broker.common import management_request
from course.broker.node import Install, kill, launch, node_ctl
from course.checks import eventually, holds_for
from course.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
LESSON = Path(os.environ.get("LESSONS_DIR") or ROOT / "connectors" / "rabbit").resolve() / "cluster"
QUEUES = ("tasks", "tasks.classic", "poison", "poison.dead")  # the fixed names of the lesson
TASKS = 1000
WAIT = 15.0  # seconds any one expected line may take

# One cluster for the run, shared with tests/reference (tests/conftest.py): the first check
# that needs it waits for it to start.
pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("cluster")]


# --------------------------------------------------------------------------- brokers


@pytest_asyncio.fixture
async def fresh(cluster_up: Cluster) -> AsyncIterator[Cluster]:
    """The cluster with all three nodes up and none of the lesson's queues (before each check)."""
    cluster = cluster_up
    connection = await aio_pika.connect(cluster.urls[0], timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in QUEUES:
            await channel.queue_delete(name)
    yield cluster


def tool(node: dict, name: str, *args: str) -> str:
    """Run one of the node's own CLI tools (rabbitmqctl, rabbitmq-queues) against that node."""
    if name == "rabbitmqctl":
        return node_ctl(node, *args)
    install = Install(**node["install"])
    command = install.command([install.tool(name), "-n", node["node"], *args])
    result = subprocess.run(
        command, env=node["env"], capture_output=True, text=True, timeout=60, check=False,
        **install.popen_user(),
    )  # fmt: skip
    if result.returncode != 0:
        raise subprocess.SubprocessError((result.stderr or result.stdout).strip() or "failed")
    return result.stdout


def queue_info(node: dict, queue: str) -> dict:
    """``rabbitmqctl list_queues`` for one queue: type, leader, members, online."""
    output = node_ctl(node, "list_queues", "name", "type", "leader", "members", "online",
                      "--formatter", "json")  # fmt: skip
    found = [row for row in json.loads(output) if row["name"] == queue]
    assert found, f"rabbitmqctl list_queues shows no queue {queue!r}:\n{output}"
    return found[0]


def say(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal, even when the test passes (the figures the issue asks for)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"lesson cluster: {line}")


# --------------------------------------------------------------------------- scripts


class Script(lesson_scripts.Script):
    """One cluster lesson script (``cluster/<name>.py args``), with its ``[x] <verb> task N``
    lines read as numbers and the times they came."""

    def __init__(self, name: str, args: tuple[str, ...], env: dict[str, str]) -> None:
        super().__init__([sys.executable, str(LESSON / f"{name}.py"), *args], ROOT, env)

    def tasks(self, verb: str, since: float = 0.0) -> list[tuple[float, int]]:
        """(when, N) for each `` [x] <verb> task N`` line printed after ``since``."""
        pattern = re.compile(rf"\[x\] {verb} task (\d+)")
        return [(at, int(m.group(1))) for at, line in list(self.lines)
                if at >= since and (m := pattern.search(line))]  # fmt: skip

    def numbers(self, verb: str) -> list[int]:
        return [number for _, number in self.tasks(verb)]

    def report(self, last: int | None = 20) -> str:
        return super().report(last)

    async def wait_for(
        self, text: str, times: int = 1, timeout: float = WAIT, why: str = ""
    ) -> None:
        await super().wait_for(text, times, timeout, why)

    async def finished(self, timeout: float = WAIT) -> int:
        return await super().finished(timeout)

    async def stop_cleanly(self, how: int = signal.SIGINT, timeout: float = 10.0) -> None:
        await super().stop_cleanly(how, timeout)


@pytest.fixture
def run() -> Iterator[Callable[..., Script]]:
    """``run(urls, "worker", "--capacity", "3")``: a lesson script that knows these nodes."""
    started: list[Script] = []

    def start(urls: list[str], name: str, *args: str) -> Script:
        env = {**os.environ, "RABBITMQ_NODES": " ".join(urls)}
        for unwanted in ("RABBITMQ_URL", "LESSON_WORK_SECONDS", "PYTHONUNBUFFERED"):
            env.pop(unwanted, None)  # only the nodes given; the scripts flush by themselves
        if "LESSONS_DIR" in os.environ:  # a copy of the tree: import its modules, not ours
            env["PYTHONPATH"] = str(LESSON.parents[2])
        started.append(Script(name, args, env))
        return started[-1]

    yield start
    for script in started:
        script.stop()


def done(*workers: Script) -> Counter[int]:
    """How many times each task was done."""
    return Counter(number for worker in workers for number in worker.numbers("Done"))


def lost(publisher: Script, *workers: Script) -> list[int]:
    """The tasks the broker confirmed that no worker has done (yet)."""
    return sorted(set(publisher.numbers("Confirmed")) - set(done(*workers)))


def lost_message(when: str, hint: str, publisher: Script, *workers: Script) -> Callable[[], str]:
    def message() -> str:
        missing = lost(publisher, *workers)
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        reports = "".join(script.report() for script in (publisher, *workers))
        return f"{len(missing)} confirmed task(s) never done {when}: task {shown}. {hint}{reports}"

    return message


def first(lines: list[tuple[float, int]], after: float) -> float:
    return min((at for at, _ in lines), default=float("nan")) - after


def noticed(script: Script, since: float) -> float:
    """When ``script`` first said ` [!]` (it lost its node) after ``since``; else ``since``."""
    return next((at for at, line in list(script.lines) if at >= since and " [!] " in line), since)


# --------------------------------------------------------------------------- one node


def test_with_no_node_answering_a_script_says_what_to_do(tmp_path: Path) -> None:
    nodes = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/ amqp://127.0.0.1:{free_port()}/"
    result = subprocess.run(
        [sys.executable, str(LESSON / "worker.py")],
        cwd=tmp_path,
        env={
            "RABBITMQ_NODES": nodes,
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(LESSON.parents[2]),
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "make cluster" in result.stderr and "RABBITMQ_NODES" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "****" in result.stderr, result


async def test_on_one_node_a_durable_queue_keeps_confirmed_tasks_across_a_crash(
    cluster_install: Install, run: Callable[..., Script], request: pytest.FixtureRequest
) -> None:
    """--classic: a durable classic queue with persistent tasks, on a node killed and started
    again while tasks wait in it. Every confirmed task is done once the node is back."""
    node = await asyncio.to_thread(PrivateNode(cluster_install, management=False).start)
    try:
        worker = run([node.url], "worker", "--classic", "--capacity", "5", "--work", "0.05")
        await worker.wait_for("Waiting for tasks from 'tasks.classic'")
        publisher = run([node.url], "publisher", "400", "--classic", "--rate", "200")
        await eventually(
            lambda: len(publisher.numbers("Confirmed")) >= 200,
            timeout=WAIT,
            message=lambda: "the publisher did not get 200 confirms" + publisher.report(),
        )
        waiting = len(publisher.numbers("Confirmed")) - len(set(worker.numbers("Done")))
        crashed_at = time.monotonic()
        await asyncio.to_thread(kill, node.started)  # SIGKILL: a crash, no clean shutdown
        await asyncio.to_thread(launch, node.started)
        restart = time.monotonic() - crashed_at
        assert await publisher.finished(timeout=40) == 0, "publisher failed" + publisher.report()
        await eventually(
            lambda: not lost(publisher, worker),
            timeout=30,
            message=lost_message(
                "after the node was killed and started again",
                "A durable queue keeps the persistent tasks waiting in it across a crash: is "
                "the queue durable=True and each task DeliveryMode.PERSISTENT?",
                publisher,
                worker,
            ),
        )
        await worker.stop_cleanly()
        tally = done(worker)
        back = first(worker.tasks("Done", since=crashed_at + restart), crashed_at)
        say(
            request,
            f"one node, durable classic queue, SIGKILL + start with ~{waiting} tasks waiting: "
            f"{len(publisher.numbers('Confirmed'))} confirmed, {len(tally)} done, 0 lost, "
            f"{tally.total() - len(tally)} duplicates; node back in {restart:.1f} s, worker "
            f"busy again {back:.1f} s after the crash",
        )
    finally:
        await asyncio.to_thread(node.stop)


# --------------------------------------------------------------------------- the cluster


async def test_a_quorum_queue_has_a_leader_and_two_followers(
    fresh: Cluster, run: Callable[..., Script]
) -> None:
    """What the README shows with rabbitmq-queues, rabbitmqctl and the management UI."""
    worker = run(fresh.urls, "worker")
    await worker.wait_for("Waiting for tasks from 'tasks'")
    names = set(fresh.names)
    info = await asyncio.to_thread(queue_info, fresh.nodes[1], "tasks")
    assert info["type"] == "quorum", f"`tasks` should be a quorum queue: {info}"
    assert info["leader"] == fresh.names[0], (
        f"the leader should be on node 1, where the worker declared the queue: {info}"
    )
    assert set(info["members"]) == names and set(info["online"]) == names, info

    status = await asyncio.to_thread(
        tool, fresh.nodes[2], "rabbitmq-queues", "quorum_status", "tasks", "--formatter", "json"
    )
    states = {row["Node Name"]: row["Raft State"] for row in json.loads(status)}
    assert states == {fresh.names[0]: "leader", fresh.names[1]: "follower",
                      fresh.names[2]: "follower"}, status  # fmt: skip

    assert fresh.management_url, "node 1 should have the management plugin on"
    shown = await asyncio.to_thread(
        management_request, fresh.management_url, fresh.urls[0], "GET", "queues/%2F/tasks"
    )
    assert (shown["type"], shown["leader"], set(shown["members"])) == (
        "quorum", fresh.names[0], names), shown  # fmt: skip
    await worker.stop_cleanly()


async def test_the_scripts_try_the_nodes_in_turn(
    fresh: Cluster, run: Callable[..., Script]
) -> None:
    """Node 1 of the list does not answer: the scripts go on to node 2."""
    nodes = [f"amqp://guest:guest@127.0.0.1:{free_port()}/", *fresh.urls[1:]]
    publisher = run(nodes, "publisher", "5", "--rate", "100")
    assert await publisher.finished() == 0, "the publisher failed" + publisher.report()
    assert publisher.count("node 1 (") and publisher.count("does not answer"), publisher.report()
    assert publisher.count(" [*] Connected to node 2"), publisher.report()
    worker = run(nodes, "worker", "--work", "0")
    await eventually(
        lambda: sorted(worker.numbers("Done")) == [1, 2, 3, 4, 5],
        timeout=WAIT,
        message=lambda: "the worker should do tasks 1 to 5 through node 2" + worker.report(),
    )
    await worker.stop_cleanly(signal.SIGTERM)


async def test_confirmed_means_the_broker_has_it(
    fresh: Cluster, run: Callable[..., Script]
) -> None:
    """While no byte reaches the broker, no task can be confirmed (the ledger relies on it)."""
    async with TcpProxy(fresh.urls[0]) as proxy:
        publisher = run([proxy.url], "publisher", str(TASKS), "--rate", "100")
        await eventually(
            lambda: len(publisher.numbers("Confirmed")) >= 5,
            timeout=WAIT,
            message=lambda: "the publisher got no confirms" + publisher.report(),
        )
        proxy.pause()
        await asyncio.sleep(0.1)  # what was already on its way may still be confirmed
        seen = len(publisher.numbers("Confirmed"))
        await holds_for(
            lambda: len(publisher.numbers("Confirmed")) == seen,
            seconds=1.0,
            message=lambda: (
                "publisher.py printed 'Confirmed' for tasks while nothing could reach the "
                "broker: it must wait for the broker's confirm (publisher confirms on, and "
                "await the publish)" + publisher.report()
            ),
        )
        proxy.resume()
        await eventually(
            lambda: len(publisher.numbers("Confirmed")) > seen,
            timeout=WAIT,
            message=lambda: "no confirm came after the stall ended" + publisher.report(),
        )
        await publisher.stop_cleanly()


@pytest.mark.timeout(110)
async def test_the_ledger_loses_nothing_when_the_leaders_node_dies(
    fresh: Cluster, run: Callable[..., Script], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    worker = run(fresh.urls, "worker", "--capacity", "10", "--work", "0.05")
    await worker.wait_for("Waiting for tasks from 'tasks'")
    info = await asyncio.to_thread(queue_info, fresh.nodes[0], "tasks")
    # (A classic queue shows no leader on 3.x; it lives where it was declared: node 1.)
    leader = fresh.names.index(info["leader"]) if info["leader"] in fresh.names else 0
    publisher = run(fresh.urls, "publisher", str(TASKS), "--rate", "100")
    await eventually(
        lambda: len(publisher.numbers("Confirmed")) >= 300,
        timeout=WAIT + 10,
        message=lambda: "the publisher did not get 300 confirms" + publisher.report(),
    )

    killed_at = time.monotonic()
    await asyncio.to_thread(fresh.kill, leader)  # SIGKILL, as a crash would
    last_before = max(publisher.numbers("Confirmed"))

    def failed_over() -> bool:
        new = [n for _, n in worker.tasks("Done", since=killed_at) if n > last_before]
        return len(publisher.tasks("Confirmed", since=killed_at)) >= 20 and bool(new)

    await eventually(
        failed_over,
        timeout=20,
        message=lambda: (
            f"node {leader + 1}, which held the leader of `tasks`, was killed: with 2 of 3 "
            "nodes up, the publisher should get confirms and the worker do new tasks again "
            "within 20 s, through the other nodes (a quorum queue elects a new leader; a "
            "classic queue lives on one node and waits for it)"
            + publisher.report()
            + worker.report()
        ),
    )
    since = noticed(publisher, killed_at)
    publisher_back = first(publisher.tasks("Confirmed", since=since), killed_at)
    worker_back = first(
        [(at, n) for at, n in worker.tasks("Done", since=killed_at) if n > last_before],
        killed_at,
    )
    revived = await asyncio.to_thread(fresh.revive, leader)

    assert await publisher.finished(timeout=60) == 0, "the publisher failed" + publisher.report()
    assert set(publisher.numbers("Confirmed")) == set(range(1, TASKS + 1)), (
        f"publisher.py should confirm tasks 1 to {TASKS}" + publisher.report()
    )
    await eventually(
        lambda: not lost(publisher, worker),
        timeout=30,
        message=lost_message(
            f"across the crash of node {leader + 1}",
            "The ledger must lose nothing: a task acked before its work is finished dies with "
            "the connection, and a queue that is not replicated dies with its node.",
            publisher,
            worker,
        ),
    )
    await worker.stop_cleanly()
    tally = done(worker)
    duplicates = tally.total() - len(tally)

    after = await asyncio.to_thread(queue_info, fresh.nodes[(leader + 1) % 3], "tasks")
    assert after["leader"] != fresh.names[leader], f"a new leader should have taken over: {after}"
    assert set(after["online"]) == set(fresh.names), (
        f"node {leader + 1} should be back as a member of `tasks`: {after}"
    )

    (tmp_path / "publisher.log").write_text("\n".join(publisher.out) + "\n")
    (tmp_path / "worker.log").write_text("\n".join(worker.out) + "\n")
    checked = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(LESSON / "ledger.py"), "publisher.log", "worker.log"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "lost:       0\n" in checked.stdout, checked.stdout
    assert f"duplicates: {duplicates}" in checked.stdout, (checked.stdout, duplicates)

    version = Install(**fresh.nodes[0]["install"]).version
    say(
        request,
        f"ledger on RabbitMQ {version}: {TASKS} confirmed, {len(tally)} done, 0 lost, "
        f"{duplicates} duplicates; after SIGKILL of node {leader + 1} (the leader) the publisher "
        f"was confirmed again in {publisher_back:.2f} s and the worker did a new task in "
        f"{worker_back:.2f} s; the node was back in {revived:.1f} s",
    )


async def test_a_poison_message_is_dead_lettered_after_the_delivery_limit(
    fresh: Cluster, run: Callable[..., Script]
) -> None:
    poison = run(fresh.urls, "poison", "--limit", "3", "--work", "0")
    assert await poison.finished() == 0, "poison.py failed" + poison.report()
    counts = re.findall(r"Delivery \d+ \(x-delivery-count: (\d+)\)", "\n".join(poison.out))
    assert counts == ["0", "1", "2", "3"], (
        "with x-delivery-limit 3 the task should be delivered 4 times (x-delivery-count 0 "
        "to 3), then dead-lettered" + poison.report()
    )
    assert poison.count("Dead-lettered to 'poison.dead' after 4 deliveries (x-death reason: "
                        "delivery_limit)"), poison.report()  # fmt: skip


async def test_without_a_limit_of_its_own_3x_loops_and_4x_stops_at_20(
    fresh: Cluster, run: Callable[..., Script]
) -> None:
    poison = run(fresh.urls, "poison", "--limit", "0", "--give-up", "25", "--work", "0")
    assert await poison.finished() == 0, "poison.py failed" + poison.report()
    if Install(**fresh.nodes[0]["install"]).major >= 4:
        assert poison.count("Dead-lettered to 'poison.dead' after 21 deliveries"), (
            "RabbitMQ 4.x: the default delivery limit (20) should dead-letter the task after "
            "21 deliveries" + poison.report()
        )
    else:
        assert poison.count("Still coming back after 25 deliveries"), (
            "RabbitMQ 3.x has no default delivery limit: the task should keep coming back"
            + poison.report()
        )

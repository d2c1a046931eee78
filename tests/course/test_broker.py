"""The broker package: resolution order, versions, private nodes, proofs, and cleaning up."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
import pytest

from course import broker as provisioning
from course import vhost
from course.broker import debian, resolve
from course.broker.common import Broker, BrokerUnavailable, export_url, manages, mask_url
from course.broker.node import PrivateNode, local_install, node_ctl
from course.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
needs_server = pytest.mark.skipif(local_install() is None, reason="rabbitmq-server not installed")
needs_chroot = pytest.mark.skipif(
    debian.cached() is None and debian.why_not() is not None,
    reason=f"no RabbitMQ 4.x chroot here: {debian.why_not()}",
)


def dead_url(password: str = "guest") -> str:
    """An AMQP URL where nothing listens."""
    return f"amqp://guest:{password}@127.0.0.1:{provisioning.free_port()}/"


@pytest.fixture
def nothing_around(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No RABBITMQ_URL, nothing on the local port, no Docker (the local install stays)."""
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.setattr(resolve, "DEFAULT_URL", dead_url())
    monkeypatch.setattr(resolve, "docker_available", lambda: False)
    return monkeypatch


def test_mask_url_hides_the_password_and_keeps_the_rest() -> None:
    assert mask_url("amqp://alice:s3cret@rabbit.example:5673/prod") == (
        "amqp://alice:****@rabbit.example:5673/prod"
    )
    assert mask_url("amqp://rabbit.example/") == "amqp://rabbit.example/"
    assert "s3cret" not in repr(Broker("amqp://a:s3cret@h/", "RABBITMQ_URL"))


def test_export_line_drops_default_credentials_and_masks_others() -> None:
    assert export_url("amqp://guest:guest@127.0.0.1:5673/") == "amqp://127.0.0.1:5673/"
    assert export_url("amqp://alice:s3cret@h:5672/") == "amqp://alice:****@h:5672/"


def test_rabbitmq_url_comes_first_and_is_used_as_is(monkeypatch, broker) -> None:
    async def run() -> tuple[Broker, str]:
        async with TcpProxy(broker.url) as other_port:
            monkeypatch.setenv("RABBITMQ_URL", other_port.url)
            found = await asyncio.to_thread(provisioning.find_broker, "tests")
            assert other_port.connections_seen >= 1, "readiness must open a real connection"
            return found, other_port.url

    found, expected = asyncio.run(run())
    assert (found.url, found.source) == (expected, "RABBITMQ_URL")
    assert found.version == broker.version, "the version comes from the broker's own greeting"


def test_rabbitmq_url_where_nothing_listens_fails_fast_and_says_what_to_do(monkeypatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", dead_url(password="s3cret"))
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        provisioning.find_broker("tests")
    assert time.monotonic() - began < 10
    text = str(raised.value)
    assert "RABBITMQ_URL" in text and "docker compose" in text and "rabbitmq-server" in text
    assert "s3cret" not in text


def test_a_malformed_rabbitmq_url_is_rejected_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "http://alice:s3cret@host/")
    with pytest.raises(BrokerUnavailable, match="not an AMQP URL") as raised:
        provisioning.find_broker("tests")
    assert "s3cret" not in str(raised.value)


def test_with_nothing_available_the_message_lists_every_option(nothing_around) -> None:
    nothing_around.setattr(resolve, "local_install", lambda: None)

    def cannot_build(log=None):  # type: ignore[no-untyped-def]
        raise debian.CannotBuild("building the chroot needs root (or use Docker)")

    nothing_around.setattr(debian, "ensure", cannot_build)
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        provisioning.find_broker("tests")
    assert time.monotonic() - began < 10
    for option in ("RABBITMQ_URL", "docker compose", "apt install rabbitmq-server", "brew",
                   "Debian 13 chroot: building the chroot needs root"):  # fmt: skip
        assert option in str(raised.value)


@needs_server
@pytest.mark.timeout(120)
def test_private_node_starts_answers_and_leaves_nothing_behind(nothing_around) -> None:
    """No RABBITMQ_URL, nothing on the local port, no Docker: a private node it is."""
    found = provisioning.find_broker("tests")
    try:
        assert found.source.startswith("a private node")
        assert found.version and found.version == local_install().version
        data_dir = found.started["dir"]
        assert provisioning.node_processes(data_dir), "the node should be running now"
        provisioning.wait_ready(found.url, 5)
        assert found.management_url and manages(found.url, found.management_url)
        if os.geteuid() == 0:
            assert Path(data_dir).owner() == "rabbitmq"
    finally:
        found.stop()
    assert provisioning.node_processes(data_dir) == [], "node processes were left running"
    assert not Path(data_dir).exists(), "the node's temp dir was left behind"
    assert all(not provisioning.pid_alive(pid) for pid in found.started["pids"])


@needs_chroot
@pytest.mark.timeout(300)
def test_rabbitmq_4_is_started_when_the_brokers_around_are_older(nothing_around) -> None:
    """want="4" passes over a 3.x broker and a 3.x install, and starts Debian 13's 4.x."""
    older = Broker("amqp://x/", "a 3.x broker", version="3.10.8", denies_transient=False)
    assert "RabbitMQ 4.x is wanted" in resolve.misfit(older, "4")
    found = provisioning.find_broker("tests", want="4")
    try:
        assert found.major == 4 and found.denies_transient is True, found.describe()
        assert "4.3 defaults" in found.describe()
        install = found.started["install"]
        assert install["root"], "on this machine 4.x comes from the Debian 13 chroot"
        assert install["uid"] not in {user.pw_uid for user in pwd.getpwall()}, (
            "the chroot's rabbitmq user must not share a uid with a user of this machine"
        )
        data_dir = found.started["dir"]
        beam = [pid for pid in provisioning.node_processes(Path(data_dir).name)
                if "beam" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]  # fmt: skip
        assert beam and all(os.stat(f"/proc/{pid}").st_uid == install["uid"] for pid in beam)
        assert found.started["node"] in node_ctl(found.started, "status"), "its own rabbitmqctl"
    finally:
        found.stop()
    assert provisioning.node_processes(Path(data_dir).name) == []
    assert not Path(data_dir).exists()
    mounts = Path("/proc/self/mounts").read_text()
    assert str(debian.root_dir()) not in mounts, "the chroot's /proc must go with the node"


@needs_server
@pytest.mark.timeout(180)
def test_make_broker_prints_a_working_export_line_and_broker_stop_cleans_up(
    nothing_around, tmp_path, capsys
) -> None:
    """`make broker` with no broker around: a private node that outlives the command."""
    from course.broker.__main__ import main

    nothing_around.setattr(resolve, "STATE_DIR", tmp_path)
    try:
        assert main(["up"]) == 0
        out = capsys.readouterr().out
        export = next(line for line in out.splitlines() if "export RABBITMQ_URL=" in line)
        url = export.split("=", 1)[1].strip()
        management = next(line for line in out.splitlines() if line.startswith("Management UI:"))
        management_url = management.split()[2]
        assert "guest:guest" not in out and "****" not in url

        # Running it again finds the same broker instead of starting a second one.
        assert main(["up"]) == 0
        assert f"export RABBITMQ_URL={url}" in capsys.readouterr().out

        async def connect() -> None:
            connection = await aio_pika.connect(url, timeout=5)
            await connection.close()

        asyncio.run(connect())
        assert provisioning.management_answers(management_url)
        assert main(["restart"]) == 0
        assert "stop_app, start_app" in capsys.readouterr().out
        asyncio.run(connect())
        state = resolve.read_state()
        assert state is not None
    finally:
        main(["down"])
    assert "Stopped" in capsys.readouterr().out
    assert provisioning.node_processes(Path(state["dir"]).name) == []
    assert not Path(state["dir"]).exists()
    main(["down"])
    assert "Nothing to stop" in capsys.readouterr().out
    assert main(["restart"]) == 1
    assert "restarts only brokers it started itself" in capsys.readouterr().err


def test_broker_command_line_reports_the_session_broker(broker) -> None:
    """`python -m course.broker up` with RABBITMQ_URL set: it says so and prints no password."""
    env = {**os.environ, "RABBITMQ_URL": broker.url}
    result = subprocess.run(
        [sys.executable, "-m", "course.broker", "up"],
        capture_output=True, text=True, env=env, timeout=30, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"RabbitMQ {broker.version}" in result.stdout and "from RABBITMQ_URL" in result.stdout
    password = aio_pika.connection.URL(broker.url).password
    assert f":{password}@" not in result.stdout


@needs_server
@pytest.mark.timeout(120)
def test_a_management_api_proves_itself_or_is_not_used(broker) -> None:
    """A node's own API manages it; the same API does not manage another broker."""
    node = PrivateNode(local_install()).start()
    try:
        assert manages(node.url, node.management_url)
        assert not manages(broker.url, node.management_url), "another broker's API is no proof"
        place = vhost.create(broker.url, node.management_url)
        assert not place.private and "not proven" in place.describe()
        own = vhost.create(node.url, node.management_url)
        try:
            assert own.private and own.url.endswith(own.name)
        finally:
            own.delete()
    finally:
        node.stop()


@pytest.mark.timeout(180)
@pytest.mark.fixed_names  # it runs a lesson check
def test_a_broker_elsewhere_never_gets_the_local_broker_tools_called(broker, tmp_path) -> None:
    """RABBITMQ_URL names a broker on another port: rabbitmqctl and friends are never run.

    Fakes of the local tools that log every call come first on PATH. `make broker`'s command,
    a lesson check, `make queues` and the vhost code run against a broker on another port."""
    fakes, calls = tmp_path / "bin", tmp_path / "calls.log"
    fakes.mkdir()
    for tool in ("rabbitmqctl", "rabbitmq-plugins", "rabbitmq-diagnostics", "rabbitmq-queues"):
        fake = fakes / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexit 0\n')
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    async def run() -> list[subprocess.CompletedProcess[str]]:
        async with TcpProxy(broker.url) as elsewhere:
            env = {**os.environ, "RABBITMQ_URL": elsewhere.url,
                   "PATH": f"{fakes}:{os.environ['PATH']}"}  # fmt: skip
            env.pop("RABBITMQ_MANAGEMENT_URL", None)
            commands = [
                [sys.executable, "-m", "course.broker", "up"],
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/lessons/test_intro.py::test_the_combined_example_sends_and_receives"],
                [sys.executable, "-m", "course.queues"],
                [sys.executable, "-c", "import os; from course import vhost; "
                 "print(vhost.create(os.environ['RABBITMQ_URL'], None).describe())"],
            ]  # fmt: skip
            results = []
            for command in commands:
                ran = await asyncio.to_thread(
                    subprocess.run, command, cwd=ROOT, env=env, capture_output=True,
                    text=True, timeout=120, check=False,
                )  # fmt: skip
                results.append(ran)
            return results

    results = asyncio.run(run())
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not calls.exists(), f"local broker tools were called:\n{calls.read_text()}"


def test_docker_runs_a_current_rabbitmq_4_management_image() -> None:
    """compose and testcontainers start the same image: 4.3 or newer, with the management UI."""
    import re

    compose = (ROOT / "docker-compose.yml").read_text()
    images = re.findall(r"^\s*image:\s*(\S+)", compose, re.MULTILINE)
    assert images and all(image == resolve.IMAGE for image in images), images
    match = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)[\w.-]*-management", resolve.IMAGE)
    assert match and (int(match[1]), int(match[2])) >= (4, 3), resolve.IMAGE


@needs_server
@pytest.mark.timeout(180)
def test_make_cluster_joins_three_nodes_and_cluster_stop_removes_them(
    nothing_around, tmp_path, capsys
) -> None:
    from course.broker import cluster
    from course.broker.__main__ import main

    nothing_around.setattr(resolve, "STATE_DIR", tmp_path)
    try:
        assert main(["cluster"]) == 0
        out = capsys.readouterr().out
        urls = [line.split("=", 1)[1].split()[0] for line in out.splitlines()
                if line.strip().startswith("node ")]  # fmt: skip
        assert len(urls) == 3 and len(set(urls)) == 3, out
        record = resolve.read_state("cluster")
        running = cluster.Cluster(local_install(), nodes=record["nodes"]).running()
        assert sorted(running) == sorted(node["node"] for node in record["nodes"]), running
        for url in urls:
            provisioning.wait_ready(f"amqp://guest:guest@{url.split('//', 1)[1]}", 5)
    finally:
        assert main(["cluster-stop"]) == 0
    assert "Stopped the cluster" in capsys.readouterr().out
    for node in record["nodes"]:
        assert provisioning.node_processes(Path(node["dir"]).name) == []
        assert not Path(node["dir"]).exists()
    assert provisioning.node_processes(f"-port {record['epmd_port']} ") == []

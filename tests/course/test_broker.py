"""The broker provisioning module: resolution order, readiness, masking, and cleaning up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
import pytest

from course import broker as provisioning
from course.broker import Broker, BrokerUnavailable, export_url, find_broker, mask_url
from course.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
needs_server = pytest.mark.skipif(
    provisioning.find_rabbitmq_server() is None, reason="rabbitmq-server is not installed here"
)


def dead_url(password: str = "guest") -> str:
    """An AMQP URL where nothing listens."""
    return f"amqp://guest:{password}@127.0.0.1:{provisioning.free_port()}/"


def test_mask_url_hides_the_password_and_keeps_the_rest() -> None:
    assert mask_url("amqp://alice:s3cret@rabbit.example:5673/prod") == (
        "amqp://alice:****@rabbit.example:5673/prod"
    )
    assert mask_url("amqp://rabbit.example/") == "amqp://rabbit.example/"
    assert "s3cret" not in repr(Broker("amqp://a:s3cret@h/", "RABBITMQ_URL"))


def test_export_line_drops_default_credentials_and_masks_others() -> None:
    assert export_url("amqp://guest:guest@127.0.0.1:5673/") == "amqp://127.0.0.1:5673/"
    assert export_url("amqp://alice:s3cret@h:5672/") == "amqp://alice:****@h:5672/"


def test_rabbitmq_url_comes_first_and_is_used_as_is(monkeypatch, rabbitmq_url) -> None:
    async def run() -> tuple[str, str, str]:
        async with TcpProxy(rabbitmq_url) as other_port:
            monkeypatch.setenv("RABBITMQ_URL", other_port.url)
            found = await asyncio.to_thread(find_broker, "tests")
            assert other_port.connections_seen >= 1, "readiness must open a real connection"
            return found.url, found.source, other_port.url

    url, source, expected = asyncio.run(run())
    assert (url, source) == (expected, "RABBITMQ_URL")


def test_rabbitmq_url_where_nothing_listens_fails_fast_and_says_what_to_do(monkeypatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", dead_url(password="s3cret"))
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        find_broker("tests")
    assert time.monotonic() - began < 10
    text = str(raised.value)
    assert "RABBITMQ_URL" in text and "docker compose" in text and "rabbitmq-server" in text
    assert "s3cret" not in text


def test_a_malformed_rabbitmq_url_is_rejected_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "http://alice:s3cret@host/")
    with pytest.raises(BrokerUnavailable, match="not an AMQP URL") as raised:
        find_broker("tests")
    assert "s3cret" not in str(raised.value)


def test_with_nothing_available_the_message_lists_every_option(monkeypatch) -> None:
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.setattr(provisioning, "DEFAULT_URL", dead_url())
    monkeypatch.setattr(provisioning, "docker_available", lambda: False)
    monkeypatch.setattr(provisioning, "find_rabbitmq_server", lambda: None)
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        find_broker("tests")
    assert time.monotonic() - began < 10
    for option in ("RABBITMQ_URL", "docker compose", "apt install rabbitmq-server", "brew"):
        assert option in str(raised.value)


@needs_server
@pytest.mark.timeout(120)
def test_private_node_starts_answers_and_leaves_nothing_behind(monkeypatch) -> None:
    """No RABBITMQ_URL, nothing on the local port, no Docker: a private node it is."""
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.setattr(provisioning, "DEFAULT_URL", dead_url())
    monkeypatch.setattr(provisioning, "docker_available", lambda: False)

    found = find_broker("tests")
    try:
        assert found.source.startswith("a private rabbitmq-server node")
        data_dir = found.started["dir"]
        assert provisioning.node_processes(data_dir), "the node should be running now"
        provisioning.wait_ready(found.url, 5)
        assert found.management_url and provisioning.management_answers(found.management_url)
        if os.geteuid() == 0:
            assert Path(data_dir).owner() == "rabbitmq"
    finally:
        found.stop()
    assert provisioning.node_processes(data_dir) == [], "node processes were left running"
    assert not Path(data_dir).exists(), "the node's temp dir was left behind"
    assert all(not provisioning.pid_alive(pid) for pid in found.started["pids"])


@needs_server
@pytest.mark.timeout(120)
def test_make_broker_prints_a_working_export_line_and_broker_stop_cleans_up(
    monkeypatch, tmp_path, capsys
) -> None:
    """`make broker` with no broker around: a private node that outlives the command."""
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.setattr(provisioning, "DEFAULT_URL", dead_url())
    monkeypatch.setattr(provisioning, "docker_available", lambda: False)
    monkeypatch.setattr(provisioning, "STATE_FILE", tmp_path / "state.json")
    try:
        assert provisioning.main(["up"]) == 0
        out = capsys.readouterr().out
        export = next(line for line in out.splitlines() if "export RABBITMQ_URL=" in line)
        url = export.split("=", 1)[1].strip()
        management = next(line for line in out.splitlines() if line.startswith("Management UI:"))
        management_url = management.split()[2]
        assert "guest:guest" not in out and "****" not in url

        # Running it again finds the same broker instead of starting a second one.
        assert provisioning.main(["up"]) == 0
        assert f"export RABBITMQ_URL={url}" in capsys.readouterr().out

        async def connect() -> None:
            connection = await aio_pika.connect(url, timeout=5)
            await connection.close()

        asyncio.run(connect())
        assert provisioning.management_answers(management_url)
        state = provisioning._read_state()
        assert state is not None
    finally:
        provisioning.main(["down"])
    assert "Stopped" in capsys.readouterr().out
    assert provisioning.node_processes(state["dir"]) == []
    assert not Path(state["dir"]).exists()
    provisioning.main(["down"])
    assert "Nothing to stop" in capsys.readouterr().out


def test_broker_command_line_reports_the_session_broker(rabbitmq_url) -> None:
    """`python -m course.broker up` with RABBITMQ_URL set: it says so and prints no password."""
    env = {**os.environ, "RABBITMQ_URL": rabbitmq_url}
    result = subprocess.run(
        [sys.executable, "-m", "course.broker", "up"],
        capture_output=True, text=True, env=env, timeout=30, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "RabbitMQ from RABBITMQ_URL" in result.stdout
    password = aio_pika.connection.URL(rabbitmq_url).password
    assert f":{password}@" not in result.stdout

"""The one resolution order: which broker the tests, the terminals and the demo use.

1. ``RABBITMQ_URL``, if set (the course platform sets it);
2. a broker already answering on ``localhost:5672`` with guest/guest;
3. (terminals) the broker an earlier ``make broker`` started, if it still answers;
4. Docker: ``docker compose`` for terminals, testcontainers for tests;
5. a private node of the locally installed ``rabbitmq-server`` (:mod:`course.broker.node`);
6. a private node of Debian 13's RabbitMQ 4.x in a chroot (:mod:`course.broker.debian`), as
   root on Debian or Ubuntu;
7. otherwise :class:`BrokerUnavailable`, whose message lists what was tried and the options.

``want="4"`` asks for RabbitMQ 4.x with the 4.3 defaults (transient shared queues refused):
a candidate that is older, or more permissive, is passed over with the reason, and the next
one is tried. With ``want=None`` the first broker that answers is the one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any, Literal

from yarl import URL

from course.broker import debian
from course.broker.common import (
    COMPOSE_READY_TIMEOUT,
    DEFAULT_URL,
    LOCAL_PROBE_TIMEOUT,
    OPTIONS,
    ROOT,
    URL_READY_TIMEOUT,
    Broker,
    BrokerUnavailable,
    inspect,
    management_for,
    mask_url,
    wait_ready,
)
from course.broker.node import PrivateNode, local_install, stop_started

Purpose = Literal["tests", "terminal"]
STATE_DIR = ROOT / ".broker"
# The image tests start with testcontainers (docker-compose.yml names the same one).
# Any newer 4.x management tag is fine.
IMAGE = "rabbitmq:4.3-management"
WANTS = (None, "4")


def state_file(want: str | None = None) -> Any:
    """Where `make broker` (``want``: None or "4") or `make cluster` ("cluster") keep a record."""
    return STATE_DIR / ("state.json" if want is None else f"state-{want}.json")


def misfit(broker: Broker, want: str | None) -> str | None:
    """Why ``broker`` does not fit what is wanted (None: it fits)."""
    if want is None:
        return None
    if broker.major < 4:
        return f"it is {broker.flavour()}; RabbitMQ 4.x is wanted"
    if not broker.denies_transient:
        return f"it is {broker.flavour()}; the 4.3 defaults are wanted"
    return None


def find_broker(
    purpose: Purpose = "tests",
    log: Callable[[str], None] | None = None,
    want: str | None = None,
) -> Broker:
    """Return a broker that answers (and fits ``want``), starting one if needed.

    ``purpose="tests"`` starts throwaway brokers (testcontainers, or a private node on random
    ports) that the caller must ``stop()``. ``purpose="terminal"`` starts brokers that outlive
    this process (``docker compose``, or a private node preferring ports 5672/15672) and records
    them in ``.broker/`` for :func:`stop_recorded`.
    """
    if want not in WANTS:
        raise ValueError(f"want must be one of {WANTS}, not {want!r}")
    say = log or (lambda _message: None)
    started_at = time.monotonic()
    tried: list[str] = []

    def done(broker: Broker) -> Broker:
        broker.seconds = time.monotonic() - started_at
        if broker.management_url is None and not broker.started:
            broker.management_url = management_for(broker.url)
        return broker

    def fits(broker: Broker, what: str) -> bool:
        reason = misfit(broker, want)
        if reason:
            tried.append(f"{what}: {reason}")
            broker.stop()
        return reason is None

    env_url = _env_url()
    if env_url:
        _check_url(env_url)
        try:
            found = inspect(Broker(env_url, "RABBITMQ_URL"), wait_ready(env_url, URL_READY_TIMEOUT))
        except BrokerUnavailable as error:
            if want is None:
                raise BrokerUnavailable(
                    f"RABBITMQ_URL is set to {mask_url(env_url)}, but no RabbitMQ broker answers "
                    f"there ({error}).\nFix the URL, start that broker, or unset RABBITMQ_URL to "
                    f"let the course find or start one.\n{OPTIONS}"
                ) from None
            tried.append(f"RABBITMQ_URL ({mask_url(env_url)}): {error}")
        else:
            if fits(found, f"RABBITMQ_URL ({mask_url(env_url)})"):
                return done(found)
    else:
        tried.append("RABBITMQ_URL: not set")

    try:
        properties = wait_ready(DEFAULT_URL, LOCAL_PROBE_TIMEOUT, retry=False)
    except BrokerUnavailable as error:
        tried.append(f"localhost:5672: {error}")
    else:
        found = inspect(Broker(DEFAULT_URL, "the broker already running on localhost:5672"),
                        properties)  # fmt: skip
        if fits(found, "localhost:5672"):
            return done(found)

    if purpose == "terminal":
        recorded = _recorded_broker(want)
        if recorded is not None:
            return done(recorded)

    if docker_available():
        say("Starting RabbitMQ with Docker ...")
        found = _start_compose(want) if purpose == "terminal" else _start_testcontainer()
        if fits(found, "Docker"):
            return done(found)
    else:
        tried.append("Docker: no Docker engine answers")

    install = local_install()
    if install is None:
        tried.append("rabbitmq-server: not installed")
    elif want == "4" and install.major and install.major < 4:
        tried.append(f"rabbitmq-server: the local install is {install.version}, not 4.x")
    else:
        say(f"Starting a private node of {install.label} ({install.version or '?'}) ...")
        found = PrivateNode(install, prefer_default_ports=(purpose == "terminal")).start()
        if fits(found, "a private node of the local install"):
            return done(_record(found, purpose, want))

    if want == "4" or install is None:
        try:
            chroot = debian.ensure(log=say)
        except debian.CannotBuild as error:
            tried.append(f"{debian.NAME} chroot: {error}")
        else:
            say(f"Starting a private node of RabbitMQ {chroot.version} ({debian.NAME} chroot) ...")
            found = PrivateNode(chroot, prefer_default_ports=(purpose == "terminal")).start()
            if fits(found, f"the {debian.NAME} chroot"):
                return done(_record(found, purpose, want))

    what = "RabbitMQ 4.x with the 4.3 defaults" if want == "4" else "RabbitMQ broker"
    raise BrokerUnavailable(
        f"No {what} found, and none could be started.\nTried:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + OPTIONS
    )


def _env_url() -> str:
    import os

    return os.environ.get("RABBITMQ_URL", "").strip()


def _check_url(url: str) -> None:
    parsed = URL(url)
    if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
        raise BrokerUnavailable(
            f"RABBITMQ_URL={mask_url(url)} is not an AMQP URL; expected "
            f"amqp://user:password@host:5672/vhost.\n{OPTIONS}"
        )


def _record(broker: Broker, purpose: Purpose, want: str | None) -> Broker:
    if purpose == "terminal":
        write_state(want, broker.started)
    return broker


# --------------------------------------------------------------------------- Docker


def docker_available() -> bool:
    """True if a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def _start_testcontainer() -> Broker:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    container = RabbitMqContainer(IMAGE).with_exposed_ports(15672)
    container.start()
    host = container.get_container_host_ip()
    url = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/"
    management = f"http://{host}:{container.get_exposed_port(15672)}/"
    properties = wait_ready(url, COMPOSE_READY_TIMEOUT)
    broker = Broker(url, f"a Docker container ({IMAGE}, testcontainers)", 0, management,
                    _stop=container.stop)  # fmt: skip
    return inspect(broker, properties)


def _start_compose(want: str | None) -> Broker:
    subprocess.run(
        ["docker", "compose", "up", "-d", "--wait"],
        cwd=ROOT,
        check=True,
        timeout=COMPOSE_READY_TIMEOUT,
    )
    properties = wait_ready(DEFAULT_URL, COMPOSE_READY_TIMEOUT)
    started = {"kind": "compose", "url": DEFAULT_URL, "management_url": "http://localhost:15672/"}
    write_state(want, started)
    broker = Broker(DEFAULT_URL, "docker compose", 0, started["management_url"], started)
    return inspect(broker, properties)


# --------------------------------------------------------------------------- `make broker` state


def write_state(want: str | None, started: dict[str, Any]) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    state_file(want).write_text(json.dumps(started, indent=2))


def read_state(want: str | None = None) -> dict[str, Any] | None:
    try:
        return json.loads(state_file(want).read_text())
    except (OSError, ValueError):
        return None


def _recorded_broker(want: str | None) -> Broker | None:
    """The broker an earlier `make broker` started, if it still answers."""
    state = read_state(want)
    if not state:
        return None
    try:
        properties = wait_ready(state["url"], LOCAL_PROBE_TIMEOUT, retry=False)
    except (BrokerUnavailable, KeyError):
        stop(state)
        state_file(want).unlink(missing_ok=True)
        return None
    compose = state.get("kind") == "compose"
    what = "docker compose" if compose else f"a private node ({state['node']})"
    source = f"{what}, started earlier by `make broker`"
    return inspect(Broker(state["url"], source, 0, state.get("management_url"), state), properties)


def stop(started: dict[str, Any]) -> None:
    """Stop a recorded broker: docker compose, or a private node."""
    if started.get("kind") == "compose":
        subprocess.run(["docker", "compose", "down"], cwd=ROOT, check=False, timeout=120)
    else:
        stop_started(started)


def stop_recorded() -> str:
    """Stop what `make broker` started (and nothing else); say what happened."""
    said = []
    for want in WANTS:
        state = read_state(want)
        if not state:
            continue
        stop(state)
        state_file(want).unlink(missing_ok=True)
        compose = state.get("kind") == "compose"
        what = "docker compose" if compose else f"private node {state['node']}"
        said.append(f"Stopped the broker `make broker` started ({what}).")
    return "\n".join(said) or "Nothing to stop: `make broker` has not started a broker here."

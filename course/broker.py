"""Find a RabbitMQ broker, or start one, for tests, terminals and the demo.

One resolution order, used everywhere:

1. ``RABBITMQ_URL``, if set (the course platform sets it);
2. a broker already answering on ``localhost:5672`` with guest/guest;
3. Docker: ``docker compose`` for terminals, testcontainers for tests;
4. a private node of a locally installed ``rabbitmq-server``: its own node name, ports, Erlang
   port mapper and data dir in a temp folder, the management plugin on, and nothing left behind
   once it is stopped;
5. otherwise :class:`BrokerUnavailable`, whose message lists these options.

"Ready" always means a real AMQP connection was opened, waited for with a deadline.

Command line (used by ``make broker`` / ``make broker-stop``)::

    python -m course.broker up      # find or start one, print `export RABBITMQ_URL=...`
    python -m course.broker down    # stop only what `up` started
    python -m course.broker setup   # `make setup`: apt-install rabbitmq-server if need be
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from yarl import URL

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ROOT / ".broker" / "state.json"
NODE_PREFIX = "course-rabbitmq-"

# How long each step may take before we move on (seconds).
URL_READY_TIMEOUT = 5.0  # RABBITMQ_URL: a platform broker may still be booting
LOCAL_PROBE_TIMEOUT = 2.0  # localhost:5672: answers at once or is not there
NODE_READY_TIMEOUT = 60.0  # a private node is usually ready in ~8-10 s
COMPOSE_READY_TIMEOUT = 120.0

Purpose = Literal["tests", "terminal"]

OPTIONS = """\
Ways to get a broker (any one is enough):
  * Docker:        docker compose up -d        (then: make test / make demo)
  * Your own:      export RABBITMQ_URL=amqp://user:password@host:5672/
  * Local install: apt install rabbitmq-server  (Debian/Ubuntu; `make setup` does it as root)
                   brew install rabbitmq         (macOS)
  The course then starts a private node of it by itself, and stops it afterwards."""


class BrokerUnavailable(RuntimeError):
    """No broker could be found or started; the message says why and what to do."""


def mask_url(url: str | URL) -> str:
    """Return ``url`` with its password replaced by ``****`` (safe to print or log)."""
    try:
        parsed = URL(str(url))
    except (TypeError, ValueError):
        return "<unparsable URL>"
    if parsed.password is None:
        return str(parsed)
    return str(parsed.with_password("****"))


def export_url(url: str) -> str:
    """``url`` fit to print in an export line: the default guest/guest login is left out
    (clients assume it), and any other password is masked."""
    parsed = URL(url)
    if (parsed.user, parsed.password) == ("guest", "guest"):
        return str(parsed.with_user(None))
    return mask_url(parsed)


@dataclass
class Broker:
    """A broker that answers: where it is, where it came from, how long it took."""

    url: str
    source: str
    seconds: float = 0.0
    management_url: str | None = None
    started: dict[str, Any] = field(default_factory=dict)  # what we started, to stop it again
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Broker(url={mask_url(self.url)!r}, source={self.source!r})"

    def describe(self) -> str:
        return f"RabbitMQ from {self.source}: {mask_url(self.url)} (ready in {self.seconds:.1f} s)"

    @property
    def owned(self) -> bool:
        """True when this process (or `make broker`) started the broker."""
        return self._stop is not None or bool(self.started)

    def stop(self) -> None:
        """Stop the broker if we started it; a broker we merely found is left alone."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


# --------------------------------------------------------------------------- readiness


def _run(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even if a loop is already running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _try_amqp(url: str, timeout: float) -> None:
    import aio_pika

    parsed = URL(url)
    port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
    # A bare TCP connect first: quick, and it keeps aiormq from logging every refused attempt.
    _reader, writer = await asyncio.wait_for(asyncio.open_connection(parsed.host, port), timeout)
    writer.close()
    connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout), timeout)
    await connection.close()


async def _wait_amqp(url: str, deadline: float, retry: bool) -> None:
    while True:
        left = deadline - time.monotonic()
        try:
            await _try_amqp(url, max(0.5, min(left, 5.0)))
            return
        except Exception as error:  # any failure means "not yet"
            if not retry or time.monotonic() + 0.25 >= deadline:
                raise BrokerUnavailable(_reason(error, url)) from error
            await asyncio.sleep(0.25)


def _reason(error: BaseException, url: str) -> str:
    text = str(error) or type(error).__name__
    password = URL(url).password
    if password:
        text = text.replace(password, "****")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer before the deadline"
    if "ACCESS_REFUSED" in text or "authentication" in text.lower():
        return "the broker refused the login (wrong user, password or vhost)"
    if isinstance(error, ConnectionError) or "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:200]


def wait_ready(url: str, timeout: float, retry: bool = True) -> None:
    """Block until an AMQP connection to ``url`` opens, or raise :class:`BrokerUnavailable`."""
    _run(_wait_amqp(url, time.monotonic() + timeout, retry))


def management_answers(url: str, user: str = "guest", password: str = "guest") -> bool:
    """True if the management HTTP API answers at ``url`` with these credentials."""
    request = urllib.request.Request(url.rstrip("/") + "/api/overview")
    token = f"{user}:{password}".encode()
    import base64

    request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _management_for(amqp_url: str) -> str | None:
    """The management UI that goes with a broker, when one answers."""
    explicit = os.environ.get("RABBITMQ_MANAGEMENT_URL") or os.environ.get("RABBITMQ_MANAGER_URL")
    if explicit:
        return explicit
    parsed = URL(amqp_url)
    guess = f"http://{parsed.host}:15672/"
    ok = management_answers(guess, parsed.user or "guest", parsed.password or "guest")
    return guess if ok else None


# --------------------------------------------------------------------------- finding


def find_broker(purpose: Purpose = "tests", log: Callable[[str], None] | None = None) -> Broker:
    """Return a broker that answers, starting one if needed (see the module docstring).

    ``purpose="tests"`` starts throwaway brokers (testcontainers, or a private node on random
    ports) that the caller must ``stop()``. ``purpose="terminal"`` starts brokers that outlive
    this process (``docker compose``, or a private node preferring ports 5672/15672) and records
    them in ``.broker/state.json`` for :func:`stop_recorded`.
    """
    say = log or (lambda _message: None)
    started_at = time.monotonic()

    def done(broker: Broker) -> Broker:
        broker.seconds = time.monotonic() - started_at
        if broker.management_url is None and not broker.started:
            broker.management_url = _management_for(broker.url)
        return broker

    env_url = os.environ.get("RABBITMQ_URL", "").strip()
    if env_url:
        _check_url(env_url)
        try:
            wait_ready(env_url, URL_READY_TIMEOUT)
        except BrokerUnavailable as error:
            raise BrokerUnavailable(
                f"RABBITMQ_URL is set to {mask_url(env_url)}, but no RabbitMQ broker answers "
                f"there ({error}).\nFix the URL, start that broker, or unset RABBITMQ_URL to let "
                f"the course find or start one.\n{OPTIONS}"
            ) from None
        return done(Broker(env_url, "RABBITMQ_URL"))

    tried = ["RABBITMQ_URL: not set"]
    try:
        wait_ready(DEFAULT_URL, LOCAL_PROBE_TIMEOUT, retry=False)
        return done(Broker(DEFAULT_URL, "the broker already running on localhost:5672"))
    except BrokerUnavailable as error:
        tried.append(f"localhost:5672: {error}")

    if purpose == "terminal":
        recorded = _recorded_broker()
        if recorded is not None:
            return done(recorded)

    if docker_available():
        say("No broker found; starting one with Docker ...")
        broker = _start_compose() if purpose == "terminal" else _start_testcontainer()
        return done(broker)
    tried.append("Docker: no Docker engine answers")

    server = find_rabbitmq_server()
    if server is not None:
        say(f"No broker found; starting a private node of {server} ...")
        node = PrivateNode(server, prefer_default_ports=(purpose == "terminal"))
        broker = node.start()
        if purpose == "terminal":
            _write_state(broker.started)
        return done(broker)
    tried.append("rabbitmq-server: not installed")

    raise BrokerUnavailable(
        "No RabbitMQ broker found, and none could be started.\nTried:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + OPTIONS
    )


def _check_url(url: str) -> None:
    parsed = URL(url)
    if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
        raise BrokerUnavailable(
            f"RABBITMQ_URL={mask_url(url)} is not an AMQP URL; expected "
            f"amqp://user:password@host:5672/vhost.\n{OPTIONS}"
        )


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

    container = RabbitMqContainer("rabbitmq:3.13-management").with_exposed_ports(15672)
    container.start()
    host = container.get_container_host_ip()
    url = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/"
    management = f"http://{host}:{container.get_exposed_port(15672)}/"
    wait_ready(url, COMPOSE_READY_TIMEOUT)
    return Broker(url, "a Docker container (testcontainers)", 0, management, _stop=container.stop)


def _start_compose() -> Broker:
    subprocess.run(
        ["docker", "compose", "up", "-d", "--wait"],
        cwd=ROOT,
        check=True,
        timeout=COMPOSE_READY_TIMEOUT,
    )
    wait_ready(DEFAULT_URL, COMPOSE_READY_TIMEOUT)
    started = {"kind": "compose", "url": DEFAULT_URL, "management_url": "http://localhost:15672/"}
    _write_state(started)
    return Broker(DEFAULT_URL, "docker compose", 0, started["management_url"], started)


# --------------------------------------------------------------------------- private node


def find_rabbitmq_server() -> str | None:
    """The real ``rabbitmq-server`` start script of a local install, if there is one."""
    candidates = [
        shutil.which("rabbitmq-server"),
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "/usr/sbin/rabbitmq-server",
        "/opt/homebrew/sbin/rabbitmq-server",
        "/usr/local/sbin/rabbitmq-server",
    ]
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        real = os.path.realpath(candidate)
        if os.path.basename(real) == "rabbitmq-script-wrapper":
            # Debian's wrapper switches user and ignores our environment; use the script it wraps.
            real = os.path.join(os.path.dirname(real), "rabbitmq-server")
        if os.access(real, os.X_OK):
            return real
    return None


def _find_epmd() -> str | None:
    found = shutil.which("epmd")
    if found:
        return found
    for pattern in ("/usr/lib/erlang/erts-*/bin/epmd", "/usr/local/lib/erlang/erts-*/bin/epmd"):
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[-1]
    return None


def free_port(preferred: int | None = None) -> int:
    """A TCP port nobody listens on at 127.0.0.1 (``preferred`` if it is free)."""
    if preferred is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateNode:
    """A throwaway RabbitMQ node of the local install, isolated from any system broker."""

    def __init__(self, server: str, prefer_default_ports: bool = False) -> None:
        self.server = server
        self.prefer_default_ports = prefer_default_ports

    def start(self) -> Broker:
        began = time.monotonic()
        amqp_port = free_port(5672 if self.prefer_default_ports else None)
        http_port = free_port(15672 if self.prefer_default_ports else None)
        dist_port, epmd_port = free_port(), free_port()
        data = Path(tempfile.mkdtemp(prefix=NODE_PREFIX))
        node = f"{data.name}@localhost"
        (data / "rabbitmq.conf").write_text(
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {http_port}\n"
        )
        (data / "enabled_plugins").write_text("[rabbitmq_management].\n")
        # An empty env file shields the node from /etc/rabbitmq/rabbitmq-env.conf.
        (data / "rabbitmq-env.conf").write_text("")

        user = _service_user()
        if user is not None:
            for path in [data, *data.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
        env = {
            "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(data),  # the node's Erlang cookie lives here, not in ~
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(data / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(data / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(data / "node.pid"),
        }
        as_user: dict[str, Any] = {}
        if user is not None:
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

        started: dict[str, Any] = {"kind": "node", "dir": str(data), "node": node, "pids": []}
        url = f"amqp://guest:guest@127.0.0.1:{amqp_port}/"
        started.update(url=url, management_url=f"http://127.0.0.1:{http_port}/")
        log = open(data / "node.log", "wb")  # noqa: SIM115 - the node writes to it after we return
        try:
            epmd = _find_epmd()
            if epmd is not None:  # our own port mapper, so we can stop it without touching others
                process = subprocess.Popen(
                    [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, **as_user,
                )  # fmt: skip
                started["pids"].append(process.pid)
            process = subprocess.Popen(
                [self.server], cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **as_user,
            )  # fmt: skip
            started["pids"].append(process.pid)
            started["pgid"] = process.pid
            deadline = time.monotonic() + NODE_READY_TIMEOUT
            while True:
                if process.poll() is not None:
                    raise BrokerUnavailable(
                        f"the private RabbitMQ node exited during start-up:\n{_tail(data)}"
                    )
                try:
                    wait_ready(url, 1.0, retry=False)
                    break
                except BrokerUnavailable:
                    if time.monotonic() > deadline:
                        raise BrokerUnavailable(
                            "the private RabbitMQ node was not ready in "
                            f"{NODE_READY_TIMEOUT:.0f} s:\n{_tail(data)}"
                        ) from None
                    time.sleep(0.3)
        except BaseException:
            stop_started(started)
            raise
        finally:
            log.close()
        return Broker(
            url,
            f"a private rabbitmq-server node ({node})",
            time.monotonic() - began,
            started["management_url"],
            started,
            _stop=lambda: stop_started(started),
        )


def _service_user() -> pwd.struct_passwd | None:
    """As root, run the node as the `rabbitmq` user (as the packages do); otherwise as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError:
        return None


def _tail(data: Path, lines: int = 15) -> str:
    try:
        text = (data / "node.log").read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie is already dead
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def node_processes(marker: str) -> list[int]:
    """Live processes whose command line or working dir mentions ``marker`` (Linux only)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd") if (entry / "cwd").exists() else ""
        except OSError:
            continue
        if (marker in command or marker in cwd) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop_started(started: dict[str, Any], timeout: float = 20.0) -> None:
    """Stop what :class:`PrivateNode` or compose started, and remove its data dir."""
    if started.get("kind") == "compose":
        subprocess.run(["docker", "compose", "down"], cwd=ROOT, check=False, timeout=120)
        return
    pgid = started.get("pgid")
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)  # RabbitMQ shuts down cleanly on SIGTERM
    deadline = time.monotonic() + timeout
    data = started.get("dir", "")
    while time.monotonic() < deadline:
        leftovers = [pid for pid in started.get("pids", []) if pid_alive(pid)]
        leftovers += node_processes(data) if data else []
        # our epmd only goes once the node is gone
        if not leftovers or leftovers == started.get("pids", [])[:1]:
            break
        time.sleep(0.2)
    for pid in {*started.get("pids", []), *(node_processes(data) if data else [])}:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL) if pid == pgid else os.kill(pid, signal.SIGKILL)
    _reap(started.get("pids", []))
    if data:
        shutil.rmtree(data, ignore_errors=True)


def _reap(pids: list[int], timeout: float = 3.0) -> None:
    """Collect the exit status of our own children, so that no zombie is left behind."""
    waiting, deadline = set(pids), time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for pid in tuple(waiting):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    waiting.discard(pid)
            except ChildProcessError:  # not our child (e.g. `make broker-stop`) or already reaped
                waiting.discard(pid)
        if waiting:
            time.sleep(0.05)


# --------------------------------------------------------------------------- `make broker` state


def _write_state(started: dict[str, Any]) -> None:
    STATE_FILE.parent.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps(started, indent=2))


def _read_state() -> dict[str, Any] | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None


def _recorded_broker() -> Broker | None:
    """The broker an earlier `make broker` started, if it still answers."""
    state = _read_state()
    if not state:
        return None
    try:
        wait_ready(state["url"], LOCAL_PROBE_TIMEOUT, retry=False)
    except (BrokerUnavailable, KeyError):
        stop_started(state)
        STATE_FILE.unlink(missing_ok=True)
        return None
    compose = state.get("kind") == "compose"
    what = "docker compose" if compose else f"a private node ({state['node']})"
    source = f"{what}, started earlier by `make broker`"
    return Broker(state["url"], source, 0, state.get("management_url"), state)


def stop_recorded() -> str:
    """Stop what `make broker` started (and nothing else); say what happened."""
    state = _read_state()
    if not state:
        return "Nothing to stop: `make broker` has not started a broker here."
    stop_started(state)
    STATE_FILE.unlink(missing_ok=True)
    what = "docker compose" if state.get("kind") == "compose" else f"private node {state['node']}"
    return f"Stopped the broker `make broker` started ({what})."


# --------------------------------------------------------------------------- `make setup`


def setup_check() -> int:
    """For `make setup`: as root on Debian/Ubuntu with no way to get a broker, apt-install one."""
    if os.environ.get("RABBITMQ_URL") or find_rabbitmq_server() or docker_available():
        return 0
    try:
        wait_ready(DEFAULT_URL, LOCAL_PROBE_TIMEOUT, retry=False)
        return 0
    except BrokerUnavailable:
        pass
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("No RabbitMQ found: installing rabbitmq-server with apt ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "rabbitmq-server"],
            check=False,
            env=env,
        )
        if result.returncode == 0:
            return 0
        print("apt could not install rabbitmq-server.", file=sys.stderr)
    print(f"Note: no RabbitMQ broker is available yet.\n{OPTIONS}", file=sys.stderr)
    return 0  # setup itself succeeded; `make test` will say the same if nothing changes


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    command = args[0] if args else "up"
    if command == "down":
        print(stop_recorded())
        return 0
    if command == "setup":
        return setup_check()
    if command != "up":
        print(__doc__)
        return 2
    try:
        broker = find_broker("terminal", log=lambda line: print(line, flush=True))
    except BrokerUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    print(broker.describe())
    if broker.source == "RABBITMQ_URL":
        print("RABBITMQ_URL is already set in this shell; lessons and tests use it.")
    else:
        print("Use it in this shell (lessons and tests read RABBITMQ_URL):")
        print(f"  export RABBITMQ_URL={export_url(broker.url)}")
    if broker.management_url:
        print(f"Management UI: {broker.management_url}  (login guest / guest)")
    else:
        print("Management UI: not enabled on this broker "
              "(enable it with: rabbitmq-plugins enable rabbitmq_management)")  # fmt: skip
    if broker.started:
        print("Stop it with: make broker-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())

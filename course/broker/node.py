"""Private RabbitMQ nodes: started by the course, isolated from any other broker, removed after.

A private node has its own node name, AMQP, management and distribution ports, its own Erlang
port mapper (epmd) on a port of its own, its own cookie and a data dir in a temp folder. It is
started from an :class:`Install`: the local ``rabbitmq-server`` package, or the Debian 13 chroot
of :mod:`course.broker.debian` (RabbitMQ 4.x on a machine whose own package is older).

On 4.x the node denies the deprecated features that RabbitMQ 4.3 denies by default, so that it
behaves like the broker students meet today.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from course.broker.common import (
    NODE_READY_TIMEOUT,
    Broker,
    BrokerUnavailable,
    free_port,
    inspect,
    node_processes,
    pid_alive,
    wait_for_direct_reply_to,
    wait_ready,
)

NODE_PREFIX = "course-rabbitmq-"
CTL_TIMEOUT = 60.0

# What RabbitMQ 4.3 denies by default, denied on every 4.x node the course starts.
DENIED_ON_4 = ("transient_nonexcl_queues", "global_qos", "queue_master_locator")

# Run a command inside a chroot, with a /proc of its own that vanishes with the process.
_IN_CHROOT = 'root=$1 user=$2; shift 2; mount -t proc proc "$root/proc" && exec chroot --userspec="$user" "$root" "$@"'  # noqa: E501


@dataclass(frozen=True)
class Install:
    """A RabbitMQ installation the course can start private nodes of."""

    server: str  # the real rabbitmq-server script, as the node sees it (inside ``root``)
    version: str = ""  # e.g. "3.10.8", from the install's own folder names
    root: str | None = None  # the chroot it lives in; None: this machine's own files
    uid: int | None = None  # who the node runs as (None: whoever we are)
    gid: int | None = None
    label: str = "the local rabbitmq-server install"

    @property
    def major(self) -> int:
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    def host_path(self, path: str) -> Path:
        """Where a path the node sees is on this machine."""
        return Path(self.root, path.lstrip("/")) if self.root else Path(path)

    def command(self, argv: list[str]) -> list[str]:
        if self.root is None:
            return argv
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _IN_CHROOT,
                "sh", self.root, f"{self.uid}:{self.gid}", *argv]  # fmt: skip

    def popen_user(self) -> dict[str, Any]:
        """Popen arguments that run a command of the host install as its service user."""
        if self.root is not None or self.uid is None:
            return {}  # in a chroot, `chroot --userspec` switches user
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def tool(self, name: str) -> str:
        """``rabbitmqctl`` (and friends) of this install, as the node sees it."""
        return str(Path(self.server).with_name(name))

    def epmd(self) -> str | None:
        if self.root is None:
            found = shutil.which("epmd")
            if found:
                return found
        patterns = ("/usr/lib/erlang/erts-*/bin/epmd", "/usr/local/lib/erlang/erts-*/bin/epmd")
        for pattern in patterns:
            matches = sorted(glob.glob(str(self.host_path(pattern))))
            if matches:
                return "/" + str(Path(matches[-1]).relative_to(self.host_path("/")))
        return None


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


def install_version(server: str, root: str | None = None) -> str:
    """The version of the install a ``rabbitmq-server`` script belongs to ("" if unknown)."""
    base = Path(root, server.lstrip("/")) if root else Path(server)
    for lib in (base.parent.parent / "lib", base.parent.parent / "plugins", base.parent.parent):
        for entry in sorted(glob.glob(str(lib / "rabbitmq_server-*"))):
            match = re.search(r"rabbitmq_server-(\d+\.\d+\.\d+)", entry)
            if match:
                return match.group(1)
    return ""


def local_install() -> Install | None:
    """This machine's own ``rabbitmq-server``, run as the ``rabbitmq`` user when we are root."""
    server = find_rabbitmq_server()
    if server is None:
        return None
    user = _service_user()
    uid, gid = (user.pw_uid, user.pw_gid) if user else (None, None)
    return Install(server, install_version(server), None, uid, gid)


def _service_user() -> pwd.struct_passwd | None:
    """As root, run the node as the `rabbitmq` user (as the packages do); otherwise as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError:
        return None


class PrivateNode:
    """A throwaway RabbitMQ node of an :class:`Install`, isolated from any other broker.

    ``cookie`` and ``epmd_port`` are for the nodes of one cluster, which must share both (see
    :mod:`course.broker.cluster`); a lone node gets its own of each. ``management`` turns the
    management plugin on (one node of a cluster is enough).
    """

    def __init__(
        self,
        install: Install,
        prefer_default_ports: bool = False,
        cookie: str | None = None,
        epmd_port: int | None = None,
        management: bool = True,
    ) -> None:
        self.install = install
        self.prefer_default_ports = prefer_default_ports
        self.cookie = cookie
        self.epmd_port = epmd_port
        self.management = management

    def start(self) -> Broker:
        began = time.monotonic()
        started = self.prepare()
        try:
            if self.epmd_port is None:  # our own port mapper, so we can stop it alone
                started["epmd_pid"] = start_epmd(self.install, started["env"], Path(started["dir"]))
                started["pids"].append(started["epmd_pid"])
                started["epmd_port"] = int(started["env"]["ERL_EPMD_PORT"])
            properties = launch(started)
            if self.install.major >= 4:  # a fresh 4.0 node may lose its first direct reply
                wait_for_direct_reply_to(started["url"])
        except BaseException:
            stop_started(started)
            raise
        install = self.install
        broker = Broker(
            started["url"],
            f"a private node ({started['node']}) of {install.label}",
            time.monotonic() - began,
            started.get("management_url"),
            started,
            _stop=lambda: stop_started(started),
        )
        return inspect(broker, properties)

    def prepare(self) -> dict[str, Any]:
        """Ports, data dir, config and environment of a new node: what launch() needs."""
        install = self.install
        amqp_port = free_port(5672 if self.prefer_default_ports else None)
        http_port = free_port(15672 if self.prefer_default_ports else None)
        dist_port, epmd_port = free_port(), self.epmd_port or free_port()
        base = install.host_path("/var/lib/course-nodes") if install.root else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        data = Path(tempfile.mkdtemp(prefix=NODE_PREFIX, dir=base))
        seen = f"/var/lib/course-nodes/{data.name}" if install.root else str(data)  # node's view
        config = ["collect_statistics_interval = 1000"]  # the UI's counts lag 1 s, not 5 s
        if self.management:
            config += ["management.tcp.ip = 127.0.0.1", f"management.tcp.port = {http_port}"]
        if install.major >= 4:  # behave as RabbitMQ 4.3 does by default
            config += [f"deprecated_features.permit.{name} = false" for name in DENIED_ON_4]
        (data / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        plugins = "[rabbitmq_management]" if self.management else "[]"
        (data / "enabled_plugins").write_text(plugins + ".\n")
        # An empty env file shields the node from /etc/rabbitmq/rabbitmq-env.conf.
        (data / "rabbitmq-env.conf").write_text("")
        if self.cookie:
            (data / ".erlang.cookie").write_text(self.cookie)
            (data / ".erlang.cookie").chmod(0o400)
        if install.uid is not None:
            for path in [data, *data.iterdir()]:
                os.chown(path, install.uid, install.gid if install.gid is not None else -1)
        node = f"{data.name}@localhost"
        env = {
            "PATH": "/usr/lib/rabbitmq/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            if install.root
            else os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": seen,  # the node's Erlang cookie lives here, not in ~
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONF_ENV_FILE": f"{seen}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{seen}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{seen}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{seen}/enabled_plugins",
            "RABBITMQ_MNESIA_BASE": f"{seen}/mnesia",
            "RABBITMQ_LOG_BASE": f"{seen}/log",
            "RABBITMQ_PLUGINS_EXPAND_DIR": f"{seen}/plugins-expand",
            "RABBITMQ_PID_FILE": f"{seen}/node.pid",
        }
        return {
            "kind": "node",
            "dir": str(data),
            "node": node,
            "pids": [],
            "url": f"amqp://guest:guest@127.0.0.1:{amqp_port}/",
            "management_url": f"http://127.0.0.1:{http_port}/" if self.management else None,
            "env": env,
            "install": asdict(install),
        }


def start_epmd(install: Install, env: dict[str, str], data: Path) -> int:
    """An Erlang port mapper on ``env["ERL_EPMD_PORT"]``, of our own; returns its pid."""
    epmd = install.epmd()
    if epmd is None:
        raise BrokerUnavailable(f"no epmd found in {install.label}")
    with open(data / "epmd.log", "ab") as log:
        process = subprocess.Popen(
            install.command([epmd, "-port", env["ERL_EPMD_PORT"], "-address", "127.0.0.1"]),
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            **install.popen_user(),
        )  # fmt: skip
    return process.pid


def launch(started: dict[str, Any]) -> dict[str, Any]:
    """Start (or start again, after a kill) the node ``started`` describes; wait until it
    answers AMQP. Its data dir is kept, so durable queues and persistent messages survive.
    Returns the broker's server properties."""
    install = Install(**started["install"])
    data = Path(started["dir"])
    with open(data / "node.log", "ab") as log:
        process = subprocess.Popen(
            install.command([install.server]), cwd=data, env=started["env"], stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, **install.popen_user(),
        )  # fmt: skip
    started["pids"].append(process.pid)
    started["pgid"] = process.pid
    return _wait_started(process, started["url"], data)


def kill(started: dict[str, Any]) -> None:
    """SIGKILL the node at once, as a crash or a pulled plug would; its data dir stays."""
    pgid = started.get("pgid")
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pgid or 0) and time.monotonic() < deadline:
        _reap([pgid] if pgid else [], timeout=0.2)


def _wait_started(process: subprocess.Popen[bytes], url: str, data: Path) -> dict[str, Any]:
    deadline = time.monotonic() + NODE_READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise BrokerUnavailable(
                f"the private RabbitMQ node exited during start-up:\n{_tail(data)}"
            )
        try:
            return wait_ready(url, 1.0, retry=False)
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"the private RabbitMQ node was not ready in {NODE_READY_TIMEOUT:.0f} s:\n"
                    f"{_tail(data)}"
                ) from None
            time.sleep(0.3)


def _tail(data: Path, lines: int = 15) -> str:
    try:
        text = (data / "node.log").read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


CLI_TOOLS = ("rabbitmqctl", "rabbitmq-queues", "rabbitmq-diagnostics", "rabbitmq-plugins")


def node_ctl(
    started: dict[str, Any], *args: str, timeout: float = CTL_TIMEOUT, tool: str = "rabbitmqctl"
) -> str:
    """Run the node's own ``rabbitmqctl`` (or another of its CLI tools) against that node and no
    other: its name, its cookie, its port mapper. Raises ``subprocess.SubprocessError`` with the
    tool's message."""
    if tool not in CLI_TOOLS:
        raise ValueError(f"tool must be one of {CLI_TOOLS}, not {tool!r}")
    install = Install(**started["install"])
    command = install.command([install.tool(tool), "-n", started["node"], *args])
    result = subprocess.run(
        command, env=started["env"], capture_output=True, text=True, timeout=timeout,
        check=False, **install.popen_user(),
    )  # fmt: skip
    if result.returncode != 0:
        raise subprocess.SubprocessError((result.stderr or result.stdout).strip() or "failed")
    return result.stdout


def restart_app(started: dict[str, Any], timeout: float = NODE_READY_TIMEOUT) -> float:
    """``rabbitmqctl stop_app`` then ``start_app`` on a node we started; wait until it answers
    again. Returns the seconds it took. What is not durable is gone afterwards."""
    began = time.monotonic()
    node_ctl(started, "stop_app")
    start_app(started)
    wait_ready(started["url"], timeout)
    return time.monotonic() - began


def start_app(started: dict[str, Any], tries: int = 3, timeout: float = 60.0) -> None:
    """``rabbitmqctl start_app``, tried again on failure. Under load, 4.0.5 has been seen to
    fail it once (``failed_to_deny_deprecated_features``: the check that no transient shared
    queue exists ran too early) and succeed on the next try."""
    for attempt in range(tries):
        try:
            node_ctl(started, "start_app", timeout=timeout)
            return
        except subprocess.SubprocessError:
            if attempt == tries - 1:
                raise
            time.sleep(1.0)  # a pause between tries, not a wait for an event


def stop_started(started: dict[str, Any], timeout: float = 20.0) -> None:
    """Stop what :class:`PrivateNode` started, and remove its data dir."""
    pgid = started.get("pgid")
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)  # RabbitMQ shuts down cleanly on SIGTERM
    deadline = time.monotonic() + timeout
    data = started.get("dir", "")
    marker = Path(data).name if data else ""
    pids = started.get("pids", [])
    epmd = started.get("epmd_pid")
    while time.monotonic() < deadline:  # the node first; its epmd is stopped afterwards
        leftovers = {pid for pid in pids if pid != epmd and pid_alive(pid)}
        leftovers |= set(node_processes(marker) if marker else [])
        if not leftovers - {epmd}:
            break
        time.sleep(0.2)
    for pid in {*pids, *(node_processes(marker) if marker else [])}:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL) if pid == pgid else os.kill(pid, signal.SIGKILL)
    _kill_epmd(started)
    _reap(pids)
    if data:
        shutil.rmtree(data, ignore_errors=True)


def _kill_epmd(started: dict[str, Any]) -> None:
    """The node's own epmd, and only it: found by the port it was started on."""
    port = started.get("epmd_port")
    if not port:
        return
    for pid in node_processes(f"-port {port} -address 127.0.0.1"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


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

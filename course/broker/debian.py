"""RabbitMQ 4.x on a machine whose own package is older: Debian 13's package in a chroot.

Debian 12 ships RabbitMQ 3.10.8; Debian 13 ("trixie") ships 4.0.5 with Erlang 27 (and Debian 14,
"forky", still in testing, 4.3.x: ``COURSE_DEBIAN_SUITE=forky`` builds that one). When no 4.x
broker is to be had otherwise (no Docker, an older package), the course builds a minimal trixie
chroot with ``rabbitmq-server`` once, caches it outside the repo, and starts private nodes from
it (:class:`course.broker.node.PrivateNode`), each with its own name, ports and data.

Building needs root, a Debian-family machine with apt, and the packages of Debian's archive.
Only the archive the machine's own apt already uses is asked (or ``COURSE_DEBIAN_MIRROR``).
What the build does, and why:

* ``debootstrap`` comes from the machine's apt (``apt-get download`` + ``dpkg -x``) when it is
  not installed: nothing is installed on the host;
* a ``policy-rc.d`` that exits 101 keeps the package from starting a service in the chroot;
* the chroot's ``rabbitmq`` user gets a uid and gid that the host does not use, created before
  the package is installed (else the package picks 101, which may be a host user);
* ``/proc`` is mounted in a mount namespace of its own, so it goes away with the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course.broker.node import Install, install_version

# Debian 13 (stable): RabbitMQ 4.0.5, with 4.3's defaults set in its config. Authors may ask for
# the testing suite instead (COURSE_DEBIAN_SUITE=forky: RabbitMQ 4.3.x itself, a moving target).
SUITE = os.environ.get("COURSE_DEBIAN_SUITE") or "trixie"
ROLLING = {"forky", "sid", "testing", "unstable"}  # their Release files expire; snapshots lag
NAMES = {"trixie": "Debian 13", "forky": "Debian 14 (testing)", "sid": "Debian unstable"}
NAME = NAMES.get(SUITE, f"Debian {SUITE}")
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
BUILD_TIMEOUT = 900.0
UIDS = range(64100, 65000)  # where the chroot's rabbitmq user is placed, clear of host users


class CannotBuild(RuntimeError):
    """This machine cannot build the chroot; the message says why, in one line."""


def cache_dir() -> Path:
    """Where built chroots are kept: outside the repo, shared by every checkout."""
    base = os.environ.get("COURSE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache") / "rabbitmq-course"


def root_dir() -> Path:
    return cache_dir() / f"debian-{SUITE}-rabbitmq"


def cached() -> Install | None:
    """The chroot install, if it was built already."""
    root = root_dir()
    try:
        meta = json.loads((root / "course-build.json").read_text())
    except (OSError, ValueError):
        return None
    if not (root / SERVER.lstrip("/")).exists():
        return None
    return _install(root, meta)


def _install(root: Path, meta: dict) -> Install:
    return Install(
        SERVER, meta.get("version", ""), str(root), meta["uid"], meta["gid"],
        label=f"{NAME}'s rabbitmq-server, in a chroot at {root}",
    )  # fmt: skip


def why_not() -> str | None:
    """Why this machine cannot build the chroot (one line), or None if it can."""
    if not sys.platform.startswith("linux"):
        return "the RabbitMQ 4.x chroot needs Linux (Debian or Ubuntu)"
    if os.geteuid() != 0:
        return "building and running the RabbitMQ 4.x chroot needs root (or use Docker)"
    for tool in ("apt-get", "dpkg", "chroot", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"the RabbitMQ 4.x chroot needs {tool} (a Debian or Ubuntu machine)"
    if not Path(KEYRING).exists():
        return f"the RabbitMQ 4.x chroot needs Debian's archive keys ({KEYRING})"
    if mirror() is None:
        return "no Debian archive in this machine's apt sources; set COURSE_DEBIAN_MIRROR"
    return None


def mirror() -> str | None:
    """The Debian archive this machine's apt uses (or ``COURSE_DEBIAN_MIRROR``)."""
    if os.environ.get("COURSE_DEBIAN_MIRROR"):
        return os.environ["COURSE_DEBIAN_MIRROR"]
    suites = {"bookworm", "trixie", "forky", "sid", "bullseye", "stable", "testing"}
    texts = []
    for pattern in ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list",
                    "/etc/apt/sources.list.d/*.sources"):  # fmt: skip
        for path in glob.glob(pattern):
            with contextlib.suppress(OSError):
                texts.append(Path(path).read_text())
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):  # deb822 stanzas
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if set(fields.get("Suites", "").split()) & suites:
                for uri in fields.get("URIs", "").split():
                    if not uri.rstrip("/").endswith("-security"):
                        return uri
        for line in text.splitlines():  # one-line style: deb [opts] URI suite components
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] in suites:
                return parts[1]
    return None


def ensure(log=print) -> Install:  # type: ignore[no-untyped-def]
    """The chroot install: the cached one, or built now (about a minute, once)."""
    found = cached()
    if found is not None:
        return found
    problem = why_not()
    if problem:
        raise CannotBuild(problem)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        found = cached()
        if found is not None:
            return found
        log(f"Building a {NAME} chroot with RabbitMQ 4.x in {root_dir()} (once; ~1 min) ...")
        return build(log)


def build(log=print) -> Install:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    final = root_dir()
    work = Path(tempfile.mkdtemp(prefix=f"{final.name}.building-", dir=final.parent))
    root = work / "root"
    try:
        bootstrap = _debootstrap(work)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        if bootstrap.get("DEBOOTSTRAP_DIR"):
            env["DEBOOTSTRAP_DIR"] = bootstrap["DEBOOTSTRAP_DIR"]
        script = Path(bootstrap.get("DEBOOTSTRAP_DIR", "/usr/share/debootstrap"), "scripts", SUITE)
        extra = [] if script.exists() else [str(script.with_name("sid"))]  # a newer suite
        _run([bootstrap["command"], "--variant=minbase", f"--keyring={KEYRING}", SUITE,
              str(root), mirror() or "", *extra], env, "debootstrap")  # fmt: skip
        hosts = root / "etc/hosts"  # Erlang's distribution needs localhost to resolve
        if not hosts.exists():
            hosts.write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n")
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(
            "#!/bin/sh\n# the course starts its own nodes: no service here\nexit 101\n"
        )
        policy.chmod(0o755)
        uid = _free_id(root, "passwd", pwd.getpwall)
        gid = _free_id(root, "group", grp.getgrall)
        chroot = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
        inside = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", chroot,
                  str(root)]  # fmt: skip
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        _run([*inside, "groupadd", "--system", "--gid", str(gid), "rabbitmq"], env, "groupadd")
        _run([*inside, "useradd", "--system", "--uid", str(uid), "--gid", str(gid),
              "--home-dir", "/var/lib/rabbitmq", "--shell", "/usr/sbin/nologin", "rabbitmq"],
             env, "useradd")  # fmt: skip
        update = ["apt-get", "update", "-qq"]
        if SUITE in ROLLING:  # a mirror snapshot of a rolling suite carries an expired Release
            update[1:1] = ["-o", "Acquire::Check-Valid-Until=false"]
        _run([*inside, *update], env, "apt-get update")
        _run([*inside, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
              "rabbitmq-server"], env, "apt-get install rabbitmq-server")  # fmt: skip
        _run([*inside, "apt-get", "clean"], env, "apt-get clean")
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        version = install_version(SERVER, str(root))
        seconds = round(time.monotonic() - began, 1)
        meta = {"uid": uid, "gid": gid, "version": version, "suite": SUITE, "seconds": seconds}
        (root / "course-build.json").write_text(json.dumps(meta, indent=2) + "\n")
        root.rename(final)
        log(f"Built RabbitMQ {version} ({NAME}) in {seconds:.0f} s, cached in {final}.")
        return _install(final, meta)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _debootstrap(work: Path) -> dict[str, str]:
    """debootstrap: the installed one, or the package unpacked here (nothing is installed)."""
    found = shutil.which("debootstrap")
    if found:
        return {"command": found}
    unpacked = work / "debootstrap"
    unpacked.mkdir()
    _run(["apt-get", "download", "debootstrap"], None, "apt-get download debootstrap",
         cwd=unpacked)  # fmt: skip
    package = next(unpacked.glob("debootstrap_*.deb"))
    _run(["dpkg", "-x", str(package), str(unpacked / "x")], None, "dpkg -x debootstrap")
    return {
        "command": str(unpacked / "x/usr/sbin/debootstrap"),
        "DEBOOTSTRAP_DIR": str(unpacked / "x/usr/share/debootstrap"),
    }


def _free_id(root: Path, table: str, host_entries) -> int:  # type: ignore[no-untyped-def]
    """A uid/gid used neither on this machine nor in the chroot."""
    used = {entry[2] for entry in host_entries()}
    with contextlib.suppress(OSError):
        for line in (root / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                used.add(int(fields[2]))
    return next(number for number in UIDS if number not in used)


def _run(
    command: list[str], env: dict[str, str] | None, what: str, cwd: Path | None = None
) -> None:
    try:
        result = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise CannotBuild(f"{what} did not finish in {BUILD_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise CannotBuild(f"{what} failed: {lines[-1] if lines else result.returncode}")

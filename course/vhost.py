"""A private RabbitMQ vhost, for checks that must use fixed queue names on a shared broker.

The lesson scripts use the chapter's fixed names (``hello``, ``ack``, ``logs``, ...), so two
test sessions on one broker would steal each other's messages. In a vhost of its own a session
sees only its own queues and exchanges, and deleting the vhost deletes everything in it.

How the vhost is made, first that works:

1. the management HTTP API, when the broker has one (``broker.management_url``), with the
   credentials from the AMQP URL;
2. ``rabbitmqctl add_vhost`` / ``set_permissions``, when the broker is on this machine and the
   CLI may talk to it (as root, or as the ``rabbitmq`` user);
3. otherwise nothing: the default vhost of the URL is used, and :attr:`PrivateVhost.private`
   is False (callers then clean their fixed names before and after).

Names look like ``course-lessons-<host>-<pid>-<random>``, so that :func:`remove_stale` can
delete the vhosts of earlier sessions on this host that died without cleaning up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarl import URL

from course.broker import BrokerUnavailable, mask_url, pid_alive, wait_ready

PREFIX = "course-lessons"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
CLI_TIMEOUT = 30.0


@dataclass
class PrivateVhost:
    """Where a session's checks run: ``url`` points into the vhost (or the default one)."""

    url: str
    name: str | None  # None: no private vhost could be made; ``url`` is the broker's own
    how: str  # "management API", "rabbitmqctl", or why neither worked
    _base_url: str = ""
    _management_url: str | None = None

    def __repr__(self) -> str:
        return f"PrivateVhost(url={mask_url(self.url)!r}, name={self.name!r}, how={self.how!r})"

    def describe(self) -> str:
        if self.name is None:
            return f"no private vhost ({self.how}); using {mask_url(self.url)}"
        return f"private vhost {self.name!r} (made with {self.how})"

    @property
    def private(self) -> bool:
        return self.name is not None

    def delete(self) -> None:
        """Delete the vhost and everything in it (a no-op for the default vhost)."""
        if self.name is None:
            return
        name, self.name = self.name, None
        if self.how == "management API" and self._management_url:
            _api(self._management_url, self._base_url, "DELETE", f"vhosts/{_quote(name)}")
        else:
            _ctl("delete_vhost", name)


def create(amqp_url: str, management_url: str | None = None, prefix: str = PREFIX) -> PrivateVhost:
    """Make a fresh vhost on the broker at ``amqp_url`` and grant its user full rights there."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"
    name = f"{prefix}-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    user = URL(amqp_url).user or "guest"
    tried = []
    if management_url:
        try:
            _api(management_url, amqp_url, "PUT", f"vhosts/{_quote(name)}", {})
            permissions = {"configure": ".*", "write": ".*", "read": ".*"}
            _api(management_url, amqp_url, "PUT", f"permissions/{_quote(name)}/{_quote(user)}",
                 permissions)  # fmt: skip
            return _checked(amqp_url, name, "management API", management_url)
        except (OSError, ValueError, BrokerUnavailable) as error:
            tried.append(f"management API: {error}")
            _quietly(lambda: _api(management_url, amqp_url, "DELETE", f"vhosts/{_quote(name)}"))
    if URL(amqp_url).host in LOCAL_HOSTS and shutil.which("rabbitmqctl"):
        try:
            _ctl("add_vhost", name)
            _ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
            return _checked(amqp_url, name, "rabbitmqctl", None)
        except (OSError, subprocess.SubprocessError, BrokerUnavailable) as error:
            last = (str(error).strip().splitlines() or ["failed"])[-1]
            tried.append(f"rabbitmqctl: {last}")
            _quietly(lambda: _ctl("delete_vhost", name))
    else:
        tried.append("rabbitmqctl: the broker is not local, or the CLI is not installed")
    return PrivateVhost(amqp_url, None, "; ".join(tried) or "no way to make one", amqp_url)


def remove_stale(
    amqp_url: str, management_url: str | None = None, prefix: str = PREFIX
) -> list[str]:
    """Delete vhosts that earlier sessions on this host made and left behind when they died."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"
    pattern = re.compile(rf"^{re.escape(prefix)}-{re.escape(host)}-(\d+)-[0-9a-f]{{6}}$")
    try:
        if management_url:
            names = [entry["name"] for entry in _api(management_url, amqp_url, "GET", "vhosts")]
        elif URL(amqp_url).host in LOCAL_HOSTS and shutil.which("rabbitmqctl"):
            names = _ctl("list_vhosts", "-q", "--no-table-headers", "name").split()
        else:
            return []
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    removed = []
    for name in names:
        match = pattern.match(name)
        if match and not pid_alive(int(match.group(1))):
            stale = PrivateVhost("", name, "management API" if management_url else "rabbitmqctl",
                                 amqp_url, management_url)  # fmt: skip
            _quietly(stale.delete)
            removed.append(name)
    return removed


def _checked(amqp_url: str, name: str, how: str, management_url: str | None) -> PrivateVhost:
    url = str(URL(amqp_url).with_path("/" + name, encoded=False))
    vhost = PrivateVhost(url, name, how, amqp_url, management_url)
    try:
        wait_ready(url, 5.0, retry=False)  # the CLI may have reached another node than the URL
    except BrokerUnavailable:
        _quietly(vhost.delete)
        raise
    return vhost


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _api(management_url: str, amqp_url: str, method: str, path: str, body: object = None) -> Any:
    parsed = URL(amqp_url)
    token = f"{parsed.user or 'guest'}:{parsed.password or 'guest'}".encode()
    request = urllib.request.Request(
        management_url.rstrip("/") + "/api/" + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": "Basic " + base64.b64encode(token).decode(),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def _ctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise subprocess.SubprocessError((result.stderr or result.stdout).strip() or "failed")
    return result.stdout


def _quietly(action: Callable[[], object]) -> None:
    """Best-effort clean-up: a failure here must not hide the error being handled."""
    with contextlib.suppress(Exception):
        action()

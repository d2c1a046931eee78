"""A private RabbitMQ vhost, for checks that must use fixed queue names on a shared broker.

The lesson scripts use the chapter's fixed names (``hello``, ``ack``, ``logs``, ...), so two
test sessions on one broker would steal each other's messages. In a vhost of its own a session
sees only its own queues and exchanges, and deleting the vhost deletes everything in it.

A vhost is made through the management HTTP API, and only once that API is *proven* to manage
the very broker the AMQP URL reaches (:func:`course.broker.manages`: a queue with a random name,
declared over AMQP, must show up in the API). A management UI on the same host, or on the usual
port, proves nothing: it may belong to another broker. ``rabbitmqctl`` is never used: it talks
to whatever node is local, which need not be the broker of the URL.

Without a proven API the default vhost of the URL is used, :attr:`PrivateVhost.private` is
False, and :meth:`PrivateVhost.describe` says so (callers then clean their fixed names before
and after).

Names look like ``course-lessons-<host>-<pid>-<random>``, so that :func:`remove_stale` can
delete the vhosts of earlier sessions on this host that died without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import urllib.error
import urllib.parse
import uuid
from dataclasses import dataclass

from yarl import URL

from course.broker import BrokerUnavailable, manages, mask_url, pid_alive, wait_ready
from course.broker.common import management_request

PREFIX = "course-lessons"


@dataclass
class PrivateVhost:
    """Where a session's checks run: ``url`` points into the vhost (or the default one)."""

    url: str
    name: str | None  # None: no private vhost could be made; ``url`` is the broker's own
    how: str  # "management API", or why no vhost was made
    _base_url: str = ""
    _management_url: str | None = None

    def __repr__(self) -> str:
        return f"PrivateVhost(url={mask_url(self.url)!r}, name={self.name!r}, how={self.how!r})"

    def describe(self) -> str:
        if self.name is None:
            return f"no private vhost ({self.how}); using {mask_url(self.url)}"
        return f"private vhost {self.name!r} (made with the {self.how})"

    @property
    def private(self) -> bool:
        return self.name is not None

    def delete(self) -> None:
        """Delete the vhost and everything in it (a no-op for the default vhost)."""
        if self.name is None or self._management_url is None:
            return
        name, self.name = self.name, None
        with contextlib.suppress(OSError, ValueError):
            management_request(self._management_url, self._base_url, "DELETE",
                               f"vhosts/{_quote(name)}")  # fmt: skip


def create(amqp_url: str, management_url: str | None = None, prefix: str = PREFIX) -> PrivateVhost:
    """Make a fresh vhost on the broker at ``amqp_url`` and grant its user full rights there."""
    if not management_url:
        return PrivateVhost(amqp_url, None, "the broker has no management API we know of")
    if not manages(amqp_url, management_url):
        return PrivateVhost(
            amqp_url, None, f"the management API at {management_url} is not proven to be this "
            "broker's"
        )  # fmt: skip
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"
    name = f"{prefix}-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    user = URL(amqp_url).user or "guest"
    vhost = PrivateVhost(
        str(URL(amqp_url).with_path("/" + name, encoded=False)),
        name,
        "management API",
        amqp_url,
        management_url,
    )
    try:
        management_request(management_url, amqp_url, "PUT", f"vhosts/{_quote(name)}", {})
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        management_request(management_url, amqp_url, "PUT",
                           f"permissions/{_quote(name)}/{_quote(user)}", permissions)  # fmt: skip
        wait_ready(vhost.url, 5.0, retry=False)
    except (OSError, ValueError, BrokerUnavailable) as error:
        vhost.delete()
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "failed"
        return PrivateVhost(amqp_url, None, f"the management API refused: {reason}")
    return vhost


def remove_stale(
    amqp_url: str, management_url: str | None = None, prefix: str = PREFIX
) -> list[str]:
    """Delete vhosts that earlier sessions on this host made and left behind when they died."""
    if not management_url or not manages(amqp_url, management_url):
        return []
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"
    pattern = re.compile(rf"^{re.escape(prefix)}-{re.escape(host)}-(\d+)-[0-9a-f]{{6}}$")
    try:
        names = [entry["name"] for entry in management_request(management_url, amqp_url, "GET",
                                                                "vhosts")]  # fmt: skip
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return []
    removed = []
    for name in names:
        match = pattern.match(name)
        if match and not pid_alive(int(match.group(1))):
            PrivateVhost("", name, "management API", amqp_url, management_url).delete()
            removed.append(name)
    return removed


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")

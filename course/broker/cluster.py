"""A RabbitMQ cluster on one machine: three private nodes that know each other.

Each node is a :class:`course.broker.node.PrivateNode` with its own name, AMQP and
distribution ports and data dir. What makes them one cluster: a shared Erlang cookie, one
Erlang port mapper (epmd) of the cluster's own that all three register with, and
``rabbitmqctl join_cluster`` run on the second and third node. The management plugin runs on
the first node only. Everything is stopped and removed by :meth:`Cluster.stop`.

    cluster = Cluster(install).start()       # install: local_install() or debian.ensure()
    cluster.urls                              # one AMQP URL per node
    cluster.kill(1); cluster.revive(1)        # SIGKILL a node, start it again (data kept)
    cluster.stop()
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.broker.common import Broker, BrokerUnavailable, free_port, node_processes, wait_ready
from course.broker.node import (
    Install,
    PrivateNode,
    kill,
    launch,
    node_ctl,
    start_app,
    start_epmd,
    stop_started,
)

SIZE = 3
JOIN_TIMEOUT = 90.0


@dataclass
class Cluster:
    """Three (``size``) private nodes of one install, joined into one cluster."""

    install: Install
    size: int = SIZE
    nodes: list[dict[str, Any]] = field(default_factory=list)  # each node's `started` record
    epmd_port: int = 0
    epmd_pid: int = 0
    seconds: float = 0.0

    @property
    def urls(self) -> list[str]:
        return [node["url"] for node in self.nodes]

    @property
    def names(self) -> list[str]:
        return [node["node"] for node in self.nodes]

    @property
    def management_url(self) -> str | None:
        return self.nodes[0].get("management_url") if self.nodes else None

    def start(self) -> Cluster:
        began = time.monotonic()
        cookie = secrets.token_hex(20).upper()
        self.epmd_port = free_port()
        members = [
            PrivateNode(self.install, cookie=cookie, epmd_port=self.epmd_port, management=first)
            for first in [True] + [False] * (self.size - 1)
        ]
        self.nodes = [member.prepare() for member in members]
        try:
            first = self.nodes[0]
            self.epmd_pid = start_epmd(self.install, first["env"], Path(first["dir"]))
            with concurrent.futures.ThreadPoolExecutor(self.size) as pool:
                list(pool.map(launch, self.nodes))
            for node in self.nodes[1:]:
                node_ctl(node, "stop_app")
                node_ctl(node, "join_cluster", first["node"], timeout=JOIN_TIMEOUT)
                start_app(node, timeout=JOIN_TIMEOUT)
                wait_ready(node["url"], JOIN_TIMEOUT)
            self.check_running(self.size)
        except BaseException:
            self.stop()
            raise
        self.seconds = time.monotonic() - began
        return self

    def running(self) -> list[str]:
        """The nodes the first live node sees running, by name."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                out = node_ctl(node, "cluster_status", "--formatter", "json", timeout=30)
                return list(json.loads(out).get("running_nodes", []))
        return []

    def check_running(self, count: int) -> None:
        seen = self.running()
        if len(seen) != count:
            raise BrokerUnavailable(f"the cluster should run {count} nodes, but runs {seen}")

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based), as a crash would; its data stays."""
        kill(self.nodes[index])

    def revive(self, index: int) -> float:
        """Start node ``index`` again after a kill; returns the seconds until it answered."""
        began = time.monotonic()
        launch(self.nodes[index])
        return time.monotonic() - began

    def brokers(self) -> list[Broker]:
        version = self.install.version
        return [
            Broker(node["url"], f"node {node['node']} of a cluster", started=node, version=version)
            for node in self.nodes
        ]

    def record(self) -> dict[str, Any]:
        """What `make cluster` keeps in .broker/ to stop the cluster later."""
        return {"kind": "cluster", "nodes": self.nodes, "epmd_port": self.epmd_port,
                "epmd_pid": self.epmd_pid, "install": self.nodes[0]["install"]}  # fmt: skip

    def stop(self) -> None:
        stop_recorded_cluster(self.record() if self.nodes else {"nodes": []})


def stop_recorded_cluster(record: dict[str, Any]) -> None:
    """Stop every node of a cluster record and its epmd; remove what they left."""
    nodes = record.get("nodes", [])
    with concurrent.futures.ThreadPoolExecutor(max(1, len(nodes))) as pool:
        list(pool.map(stop_started, nodes))
    port, pid = record.get("epmd_port"), record.get("epmd_pid")
    for found in node_processes(f"-port {port} -address 127.0.0.1") if port else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(found, signal.SIGKILL)
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

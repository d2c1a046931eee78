"""The 3-node cluster fixtures of the course's own checks (loaded by :mod:`course.pytest_plugin`).

One cluster per run, started by the first test that needs it: the cluster lesson's checks and
the reference Worker's cluster test share it. Those tests carry the xdist group "cluster", so
they all run in one worker, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator

import pytest
import pytest_asyncio

from course.broker import Broker, BrokerUnavailable, debian, local_install
from course.broker.cluster import Cluster
from course.broker.node import Install


@pytest.fixture(scope="session")
def cluster_install(broker: Broker) -> Install:
    """The install to start private nodes of: the same major version as the session's broker."""
    if broker.major >= 4:
        try:
            return debian.ensure()
        except debian.CannotBuild as error:
            pytest.skip(f"no RabbitMQ 4.x install to start a cluster of: {error}")
    install = local_install()
    if install is None:
        pytest.skip("no local rabbitmq-server install to start a cluster of")
    return install


@pytest.fixture(scope="session")
def cluster(cluster_install: Install) -> Iterator[Cluster]:
    """A 3-node cluster; a second try when the first fails (once, on 4.0.5 under load, a node
    failed to start its app after joining: failed_to_deny_deprecated_features)."""
    started = None
    for attempt in (1, 2):
        try:
            started = Cluster(cluster_install).start()
            break
        except (BrokerUnavailable, subprocess.SubprocessError, OSError) as error:
            if attempt == 2:
                reason = (str(error) or type(error).__name__).splitlines()[0]
                pytest.fail(f"could not start a 3-node cluster, twice: {reason}", pytrace=False)
    assert started is not None
    try:
        yield started
    finally:
        started.stop()


@pytest_asyncio.fixture
async def cluster_up(cluster: Cluster) -> Cluster:
    """The shared cluster with all three nodes up (a test before may have killed one)."""
    for index, node in enumerate(cluster.nodes):
        if not answers(node["url"]):
            await asyncio.to_thread(cluster.revive, index)
    return cluster


def answers(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    with contextlib.suppress(OSError), socket.create_connection((parsed.hostname, parsed.port), 1):
        return True
    return False

"""``python -m course.broker up|down|restart|setup``: see :mod:`course.broker`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from course.broker import cluster, debian, resolve
from course.broker.common import (
    DEFAULT_URL,
    LOCAL_PROBE_TIMEOUT,
    OPTIONS,
    BrokerUnavailable,
    export_url,
    pid_alive,
    wait_ready,
)
from course.broker.node import kill, launch, local_install, node_ctl, restart_app


def setup_check() -> int:
    """For `make setup`: as root on Debian/Ubuntu with no way to get a broker, apt-install one."""
    if os.environ.get("RABBITMQ_URL") or local_install() or resolve.docker_available():
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


def up(want: str | None) -> int:
    try:
        broker = resolve.find_broker("terminal", log=lambda line: print(line, flush=True),
                                     want=want)  # fmt: skip
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
        print("Management UI: none that provably belongs to this broker "
              "(see the queues with: make queues)")  # fmt: skip
    if broker.started:
        print("Restart it with: make broker-restart    Stop it with: make broker-stop")
    return 0


def cluster_up(want: str | None) -> int:
    """`make cluster`: three private nodes joined into one cluster, recorded for cluster-stop."""
    record = resolve.read_state("cluster")
    if record:
        print("A cluster that `make cluster` started is running already:")
        _print_cluster(record["nodes"])
        return 0
    try:
        install = debian.ensure(log=print) if want == "4" else _install_for_cluster()
    except (debian.CannotBuild, BrokerUnavailable) as error:
        print(f"Cannot start a cluster here: {error}", file=sys.stderr)
        return 1
    print(f"Starting 3 private nodes of RabbitMQ {install.version} and joining them ...")
    started = cluster.Cluster(install).start()
    resolve.write_state("cluster", started.record())
    print(f"A 3-node cluster is running (ready in {started.seconds:.0f} s):")
    _print_cluster(started.nodes)
    return 0


def _install_for_cluster():  # type: ignore[no-untyped-def]
    install = local_install()
    if install is not None:
        return install
    try:
        return debian.ensure(log=print)
    except debian.CannotBuild as error:
        raise BrokerUnavailable(f"no rabbitmq-server installed, and {error}") from None


def _print_cluster(nodes: list[dict]) -> None:
    for index, node in enumerate(nodes, start=1):
        print(f"  node {index}: export RABBITMQ_URL={export_url(node['url'])}   ({node['node']})")
    if nodes and nodes[0].get("management_url"):
        print(f"  Management UI (node 1): {nodes[0]['management_url']}  (login guest / guest)")
    every = " ".join(export_url(node["url"]) for node in nodes)
    print(f'The cluster lesson\'s scripts take them all: export RABBITMQ_NODES="{every}"')
    print("Stop it with: make cluster-stop")


def cluster_down() -> int:
    record = resolve.read_state("cluster")
    if not record:
        print("Nothing to stop: `make cluster` has not started a cluster here.")
        return 0
    cluster.stop_recorded_cluster(record)
    resolve.state_file("cluster").unlink(missing_ok=True)
    print(f"Stopped the cluster `make cluster` started ({len(record['nodes'])} nodes).")
    return 0


def cluster_node(command: str, number: int | None, rest: list[str]) -> int:
    """`make cluster-kill|cluster-start|cluster-ctl NODE=n`: one node of the `make cluster`
    cluster: SIGKILL it (its data is kept), start it again, or run one of its CLI tools."""
    record = resolve.read_state("cluster")
    if not record:
        print("No cluster to act on: start one with `make cluster`.", file=sys.stderr)
        return 1
    nodes = record["nodes"]
    if number is None or not 1 <= number <= len(nodes):
        print(f"Say which node: NODE=1 to NODE={len(nodes)}.", file=sys.stderr)
        return 2
    node = nodes[number - 1]
    if command == "cluster-kill":
        kill(node)
        print(f"Killed node {number} ({node['node']}) with SIGKILL, as a crash would; its data "
              f"is kept. Start it again with: make cluster-start NODE={number}")  # fmt: skip
        return 0
    if command == "cluster-start":
        if pid_alive(node.get("pgid") or 0):
            print(f"Node {number} ({node['node']}) is running already.")
            return 0
        began = time.monotonic()
        launch(node)
        resolve.write_state("cluster", record)  # its new process, for `make cluster-stop`
        print(f"Node {number} ({node['node']}) is back, answering after "
              f"{time.monotonic() - began:.1f} s.")  # fmt: skip
        return 0
    tool, *args = rest or ["rabbitmqctl", "cluster_status"]
    try:
        print(node_ctl(node, *args, tool=tool), end="")
    except (ValueError, subprocess.SubprocessError) as error:
        print(f"{tool} on node {number} failed: {error}", file=sys.stderr)
        return 1
    return 0


def restart() -> int:
    """stop_app + start_app on the node(s) `make broker` started; never on any other broker."""
    restarted = 0
    for want in resolve.WANTS:
        state = resolve.read_state(want)
        if not state:
            continue
        if state.get("kind") == "compose":
            subprocess.run(["docker", "compose", "restart"], cwd=resolve.ROOT, check=True)
            wait_ready(state["url"], 120)
            print("Restarted the docker compose broker.")
        else:
            seconds = restart_app(state)
            print(f"Restarted {state['node']} (stop_app, start_app) in {seconds:.1f} s.")
        restarted += 1
    if not restarted:
        print("Nothing to restart: `make broker` has not started a broker here, and the course "
              "restarts only brokers it started itself.", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.broker", description=__doc__)
    parser.add_argument("command", nargs="?", default="up",
                        choices=["up", "down", "restart", "setup", "build-4", "cluster",
                                 "cluster-stop", "cluster-kill", "cluster-start",
                                 "cluster-ctl"])  # fmt: skip
    parser.add_argument("node", nargs="?", type=int, default=None,
                        help="cluster-kill/-start/-ctl: which node (1, 2 or 3)")  # fmt: skip
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="cluster-ctl: the tool and its arguments, e.g. rabbitmq-queues "
                        "quorum_status tasks")  # fmt: skip
    parser.add_argument("--rabbitmq", choices=["4"], default=None,
                        help="4: RabbitMQ 4.x with the 4.3 defaults")  # fmt: skip
    args = parser.parse_args(argv)
    want = args.rabbitmq or (os.environ.get("RABBITMQ") or None)
    if want not in resolve.WANTS:
        print(f"RABBITMQ={want}: only RABBITMQ=4 can be asked for.", file=sys.stderr)
        return 2
    if args.command == "down":
        print(resolve.stop_recorded())
        return 0
    if args.command == "restart":
        return restart()
    if args.command == "setup":
        return setup_check()
    if args.command == "cluster":
        return cluster_up(want)
    if args.command == "cluster-stop":
        return cluster_down()
    if args.command in ("cluster-kill", "cluster-start", "cluster-ctl"):
        return cluster_node(args.command, args.node, args.rest)
    if args.command == "build-4":
        try:
            install = debian.ensure()
        except debian.CannotBuild as error:
            print(f"Cannot build the RabbitMQ 4.x chroot here: {error}", file=sys.stderr)
            return 1
        print(f"RabbitMQ {install.version} is ready in {install.root}.")
        return 0
    return up(want)


if __name__ == "__main__":
    sys.exit(main())

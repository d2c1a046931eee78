"""``python -m course.broker up|down|restart|setup``: see :mod:`course.broker`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from course.broker import debian, resolve
from course.broker.common import (
    DEFAULT_URL,
    LOCAL_PROBE_TIMEOUT,
    OPTIONS,
    BrokerUnavailable,
    export_url,
    wait_ready,
)
from course.broker.node import local_install, restart_app


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
                        choices=["up", "down", "restart", "setup", "build-4"])  # fmt: skip
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

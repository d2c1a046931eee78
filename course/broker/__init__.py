"""Find a RabbitMQ broker, or start one, for tests, terminals and the demo.

The package, one file per way of getting a broker, all behind :func:`find_broker`:

* :mod:`course.broker.resolve`: the resolution order (``RABBITMQ_URL``, ``localhost:5672``,
  Docker, a private node, the Debian 13 chroot) and the record of what ``make broker`` started;
* :mod:`course.broker.node`: private nodes of an installation, and their ``rabbitmqctl``;
* :mod:`course.broker.debian`: RabbitMQ 4.x from Debian 13's package, in a cached chroot;
* :mod:`course.broker.common`: the :class:`Broker` record, readiness, password masking, and the
  proof that a management API belongs to the broker a URL reaches.

"Ready" always means a real AMQP connection was opened, waited for with a deadline.

Command line (``make broker``, ``make broker-stop``, ``make setup``)::

    python -m course.broker up [--rabbitmq 4]   # find or start one, print `export RABBITMQ_URL=...`
    python -m course.broker down                # stop only what `up` started
    python -m course.broker restart             # stop_app + start_app on the node `up` started
    python -m course.broker setup               # `make setup`: apt-install one if need be
"""

from course.broker.common import (
    DEFAULT_URL,
    OPTIONS,
    Broker,
    BrokerUnavailable,
    export_url,
    free_port,
    management_answers,
    manages,
    mask_url,
    node_processes,
    pid_alive,
    wait_ready,
)
from course.broker.node import PrivateNode, find_rabbitmq_server, local_install, stop_started
from course.broker.resolve import IMAGE, docker_available, find_broker, read_state, stop_recorded

__all__ = [
    "DEFAULT_URL",
    "IMAGE",
    "OPTIONS",
    "Broker",
    "BrokerUnavailable",
    "PrivateNode",
    "docker_available",
    "export_url",
    "find_broker",
    "find_rabbitmq_server",
    "free_port",
    "local_install",
    "management_answers",
    "manages",
    "mask_url",
    "node_processes",
    "pid_alive",
    "read_state",
    "stop_recorded",
    "stop_started",
    "wait_ready",
]

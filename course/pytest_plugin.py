"""The course's pytest plugin: broker, implementation under test, markers, names, proxy.

Loaded by ``tests/conftest.py``. What it adds:

* ``--impl DIR``: the task modules under test (default: the student files; ``solutions`` is the
  reference). See :mod:`course.impl`.
* ``--stretch``: run the starred tests even though they carry the skip mark students remove.
* ``--results-json PATH`` and the score table at the end of a run: see :mod:`course.scoring`.
* markers ``task(n)``, ``points(n)``, ``stretch``.
* ``--rabbitmq 4``: the session's broker must be RabbitMQ 4.x with the 4.3 defaults.
* a one-line broker report at the start and the end of the session (version included), and a
  clear stop when there is none.
* fixtures: ``broker``, ``rabbitmq_url``, ``names`` (unique queue/exchange names, cleaned up),
  ``proxy`` (a :class:`course.proxy.TcpProxy` to the broker), ``amqp`` (a plain connection).
* a stub's ``NotImplementedError`` turns into a failure that names the method and its step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from course import broker as broker_module
from course import impl, scoring
from course.proxy import TcpProxy

# The 3-node cluster fixtures (cluster_install, cluster, cluster_up) for the course's own checks.
pytest_plugins = ["course.cluster_fixtures"]

BROKER_KEY = pytest.StashKey[broker_module.Broker]()
CLIENT_LOG_KEY = pytest.StashKey[Path]()
CLIENT_LOGGERS = ("aiormq", "aio_pika")
BROKER_FIXTURES = {"broker", "rabbitmq_url", "names", "proxy", "amqp"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "RabbitMQ course")
    group.addoption(
        "--impl",
        metavar="DIR",
        default=None,
        help="folder with the task modules under test (rmq_worker.py, rmq_logger.py, rmq_rpc.py) "
        "(default: connectors/rabbit/task; 'solutions' = the reference)",
    )
    group.addoption(
        "--stretch",
        action="store_true",
        default=False,
        help="also run the starred (stretch) tests that are skipped until you remove their mark",
    )
    group.addoption(
        "--rabbitmq",
        metavar="VERSION",
        choices=["4"],
        default=None,
        help="4: run on RabbitMQ 4.x with the 4.3 defaults (started for the session if need be); "
        "default: the first broker found",
    )
    group.addoption(
        "--results-json",
        metavar="PATH",
        default=None,
        help="write the graded results (Exercism test-runner v3 shape, with points) to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "task(n): the graded task this test belongs to")
    config.addinivalue_line("markers", "points(n): points this graded test is worth")
    config.addinivalue_line(
        "markers", "stretch: a starred test; skipped until its skip mark is removed or --stretch"
    )
    config.addinivalue_line(
        "markers",
        "fixed_names: uses the course's fixed queue names (hello, ack, ...): such tests never run "
        "at the same time (one xdist group)",
    )
    if not config.pluginmanager.hasplugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's grouping")
    try:
        directory = impl.resolve(config.getoption("impl"))
    except impl.ImplNotFound as error:
        raise pytest.UsageError(str(error)) from None
    impl.use(directory)
    config.pluginmanager.register(scoring.Scoreboard(config), "course-scoreboard")
    _client_logs_to_a_file(config)


def _client_logs_to_a_file(config: pytest.Config) -> None:
    """aio-pika's and aiormq's own log lines (a dropped connection, with its traceback) go to a
    file, not into a failing test's report: there the test's one-line message is what counts."""
    folder = Path(tempfile.gettempdir()) / "rabbitmq-course-logs"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("client-*.log"):  # those of runs that have ended
        pid = old.stem.removeprefix("client-")
        if not pid.isdigit() or not broker_module.pid_alive(int(pid)):
            old.unlink(missing_ok=True)
    path = folder / f"client-{os.getpid()}.log"
    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    config.stash[CLIENT_LOG_KEY] = path

    def restore() -> None:
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
        handler.close()

    config.add_cleanup(restore)


class _NotClientLogs(logging.Filter):
    """Keeps aio-pika's and aiormq's records out of a failing test's "Captured log" section
    (pytest attaches its capture handler to loggers that do not propagate, too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(CLIENT_LOGGERS)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    logging_plugin = session.config.pluginmanager.get_plugin("logging-plugin")
    if logging_plugin is not None:
        logging_plugin.report_handler.addFilter(_NotClientLogs())


@pytest.hookimpl(tryfirst=True)
def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]  # an xdist hook
    """With ``-n N``, every worker uses the one broker the controller found or started."""
    found = _session_broker(node.config)
    node.workerinput["course_broker_url"] = found.url
    node.workerinput["course_management_url"] = found.management_url or ""


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        shown = impl.current().relative_to(Path.cwd())
    except ValueError:
        shown = impl.current()
    stretch = "on (--stretch)" if config.getoption("stretch") else "off"
    return [f"course: implementation under test: {shown}; stretch tests: {stretch}"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("fixed_names") is not None:
            # Under pytest-xdist (--dist loadgroup), such tests all run in one worker, in turn.
            item.add_marker(pytest.mark.xdist_group("fixed-names"))
        group = item.get_closest_marker("xdist_group")
        if group is not None:
            _join_xdist_group(item, group.args[0] if group.args else group.kwargs["name"], config)
    if not config.getoption("stretch"):
        return
    for item in items:
        if item.get_closest_marker("stretch") is not None:
            item.own_markers[:] = [mark for mark in item.own_markers if mark.name != "skip"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find the broker before the first test runs, if any selected test needs one."""
    if session.config.option.collectonly:
        return
    if not any(BROKER_FIXTURES & set(getattr(item, "fixturenames", ())) for item in session.items):
        return
    _session_broker(session.config)


def _join_xdist_group(item: pytest.Item, group: str, config: pytest.Config) -> None:
    """What pytest-xdist does for ``xdist_group`` marks, done so that pytest 9 sees it too.

    xdist (3.8) puts a test in a group by appending ``@group`` to ``item._nodeid``; pytest 9
    builds the node id from ``item._id`` instead, so the group was silently lost and such tests
    ran in any worker, at the same time."""
    if not (hasattr(config, "workerinput") and config.getoption("dist", "no") == "no"):
        return  # not an xdist worker (whose dist option xdist resets to "no")
    if not getattr(config.option, "loadgroup", False) or "@" in item.nodeid:
        return
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{group}")


def _session_broker(config: pytest.Config) -> broker_module.Broker:
    if BROKER_KEY in config.stash:
        return config.stash[BROKER_KEY]
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    handed = getattr(config, "workerinput", {}).get("course_broker_url")
    if handed:  # an xdist worker: the controller found the broker; use that one, as a found one
        os.environ["RABBITMQ_URL"] = handed
        if config.workerinput.get("course_management_url"):
            os.environ["RABBITMQ_MANAGEMENT_URL"] = config.workerinput["course_management_url"]
    try:
        found = broker_module.find_broker("tests", log=say, want=config.getoption("rabbitmq"))
    except broker_module.BrokerUnavailable as error:
        config.stash[scoring.SESSION_ERROR] = str(error)
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(str(error), red=True, bold=True)
        pytest.exit(f"no RabbitMQ broker: {str(error).splitlines()[0]}", returncode=3)
    config.stash[BROKER_KEY] = found
    config.add_cleanup(found.stop)
    say(found.describe())
    return found


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Say again, at the end, which broker this run was on (two runs can differ)."""
    if BROKER_KEY in config.stash:
        found = config.stash[BROKER_KEY]
        terminalreporter.write_line(f"course: this run was on {found.flavour()} ({found.source})")
    path = config.stash.get(CLIENT_LOG_KEY, None)
    if path is not None and path.exists() and path.stat().st_size:
        terminalreporter.write_line(
            f"course: aio-pika's own log lines (dropped connections and the like) are in {path}"
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> broker_module.Broker:
    """The broker for this session (found or started once; stopped at the end if we started it)."""
    return _session_broker(request.config)


@pytest.fixture(scope="session")
def rabbitmq_url(broker: broker_module.Broker) -> str:
    """The AMQP URL of the session's broker, credentials included. Never print it: mask_url()."""
    return broker.url


class Names:
    """Unique queue and exchange names for one test; whatever it hands out is deleted after."""

    def __init__(self, test_name: str) -> None:
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", test_name).strip("_")[:50]
        self._base = f"course.{slug}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def _new(self, kind: str) -> str:
        return f"{self._base}.{kind}.{uuid.uuid4().hex[:8]}"

    def queue(self) -> str:
        name = self._new("q")
        self.queues.append(name)
        return name

    def exchange(self) -> str:
        name = self._new("x")
        self.exchanges.append(name)
        return name

    def also_delete_queue(self, name: str) -> str:
        """Have a queue the test did not name (e.g. ``<queue>.dead``) cleaned up too."""
        self.queues.append(name)
        return name

    async def cleanup(self, url: str) -> None:
        import aio_pika

        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            for name in self.queues:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name, if_unused=False, if_empty=False)
                with contextlib.suppress(Exception):
                    await channel.close()
            for name in self.exchanges:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name, if_unused=False)
                with contextlib.suppress(Exception):
                    await channel.close()


@pytest_asyncio.fixture
async def names(request: pytest.FixtureRequest, rabbitmq_url: str) -> AsyncIterator[Names]:
    """Hand out unique queue/exchange names (``names.queue()``, ``names.exchange()``)."""
    handed = Names(request.node.name)
    yield handed
    await handed.cleanup(rabbitmq_url)


@pytest_asyncio.fixture
async def proxy(rabbitmq_url: str, names: Names) -> AsyncIterator[TcpProxy]:
    """A TCP proxy to the broker: give ``proxy.url`` to the code under test.

    At the end of the test the proxy closes, dropping whatever connection the code under test
    left open, *before* ``names`` deletes the test's queues: a robust connection left open
    would otherwise declare a deleted queue again when it restores its consumer.
    """
    async with TcpProxy(rabbitmq_url) as started:
        yield started


@pytest_asyncio.fixture
async def amqp(rabbitmq_url: str) -> AsyncIterator[object]:
    """A plain aio-pika connection for the test's own checks (closed after the test)."""
    import aio_pika

    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    async with connection:
        yield connection


# --------------------------------------------------------------------------- stub failures


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except NotImplementedError as error:
        message = not_implemented_message(error)
    # Outside the `except`, so the report is the plain message, not a chained traceback.
    pytest.fail(message, pytrace=False)


def not_implemented_message(error: NotImplementedError) -> str:
    """'Not implemented yet: Worker.start() in rmq_worker.py - Step 2: ...' from the stub."""
    frames = traceback.extract_tb(error.__traceback__)
    where = next(
        (frame for frame in reversed(frames) if Path(frame.filename).stem in impl.MODULES),
        frames[-1] if frames else None,
    )
    if where is None:
        return f"Not implemented yet: {error}"
    owner = _qualified_name(where.filename, where.name, where.lineno)
    doc = _docstring_summary(where.filename, where.name, where.lineno)
    message = f"Not implemented yet: {owner}() in {os.path.basename(where.filename)}."
    return f"{message} {doc}" if doc else message


def _qualified_name(filename: str, function: str, lineno: int | None) -> str:
    """``Class.method`` for the function raising at ``lineno`` (best effort, from the source)."""
    try:
        lines = Path(filename).read_text().splitlines()[: lineno or 0]
    except OSError:
        return function
    for line in reversed(lines):
        match = re.match(r"class\s+(\w+)", line)
        if match:
            return f"{match.group(1)}.{function}"
    return function


def _docstring_summary(filename: str, function: str, lineno: int | None) -> str:
    import ast

    try:
        tree = ast.parse(Path(filename).read_text())
    except (OSError, SyntaxError):
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            if lineno is not None and not (node.lineno <= lineno <= (node.end_lineno or lineno)):
                continue
            doc = ast.get_docstring(node) or ""
            return " ".join(doc.split("\n\n")[0].split())
    return ""

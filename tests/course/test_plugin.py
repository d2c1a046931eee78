"""The pytest plugin: --impl, --stretch, stub failures, and a missing broker (inner pytest runs)."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from course import broker as provisioning
from course import impl

PLUGIN = ("-p", "course.pytest_plugin", "-p", "no:cacheprovider")


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def write_impl(directory, who: str) -> None:
    directory.mkdir()
    (directory / "rmq_worker.py").write_text(
        textwrap.dedent(
            f'''
            WHO = "{who}"

            class Worker:
                async def start(self) -> None:
                    """Step 2: declare the queue and register the consumer; return at once."""
                    raise NotImplementedError
            '''
        )
    )


def test_impl_switches_the_module_under_test_for_the_whole_session(inner) -> None:
    write_impl(inner.path / "impl_a", "A")
    write_impl(inner.path / "impl_b", "B")
    inner.makepyfile(
        test_which="""
        import os
        from connectors.rabbit.task import rmq_worker

        def test_which():
            assert rmq_worker.WHO == os.environ["EXPECTED"]
        """
    )
    for who in ("A", "B"):
        os.environ["EXPECTED"] = who
        result = inner.runpytest_subprocess(*PLUGIN, "--impl", f"impl_{who.lower()}")
        result.assert_outcomes(passed=1)
    os.environ.pop("EXPECTED")


def test_impl_defaults_to_the_student_files_and_knows_the_reference_alias(tmp_path) -> None:
    assert impl.resolve(None) == impl.STUDENT_DIR
    assert impl.resolve("solutions") == impl.REFERENCE_DIR
    task = tmp_path / "connectors" / "rabbit" / "task"
    task.mkdir(parents=True)
    (task / "rmq_logger.py").write_text("")
    assert impl.resolve(tmp_path) == task  # a whole checkout works too


def test_impl_pointing_nowhere_is_a_usage_error(inner) -> None:
    inner.makepyfile(test_x="def test_x():\n    pass\n")
    result = inner.runpytest_subprocess(*PLUGIN, "--impl", "no_such_dir")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--impl no_such_dir: no task module (rmq_worker.py, *) in*"])


def test_stretch_runs_the_starred_tests_that_are_skipped_by_default(inner) -> None:
    inner.makepyfile(
        test_star="""
        import pytest

        @pytest.mark.stretch
        @pytest.mark.skip(reason="Step 5 (starred): remove this line to try it")
        def test_starred():
            pass

        @pytest.mark.skip(reason="an ordinary skip stays a skip")
        def test_plain_skip():
            pass
        """
    )
    inner.runpytest_subprocess(*PLUGIN).assert_outcomes(skipped=2)
    inner.runpytest_subprocess(*PLUGIN, "--stretch").assert_outcomes(passed=1, skipped=1)


def test_a_stub_fails_with_the_method_and_its_step_not_a_traceback(inner) -> None:
    write_impl(inner.path / "stub", "stub")
    inner.makepyfile(
        test_stub="""
        import asyncio
        from connectors.rabbit.task.rmq_worker import Worker

        def test_start():
            asyncio.run(Worker().start())
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN, "--impl", "stub")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Not implemented yet: Worker.start() in rmq_worker.py. "
            "Step 2: declare the queue and register the consumer; return at once.*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_no_broker_stops_the_run_within_seconds_with_the_options(inner) -> None:
    password = "s3cret-pw"
    os.environ["RABBITMQ_URL"] = f"amqp://alice:{password}@127.0.0.1:{provisioning.free_port()}/"
    try:
        inner.makepyfile(test_needs_broker="def test_a(rabbitmq_url):\n    pass\n")
        began = time.monotonic()
        result = inner.runpytest_subprocess(*PLUGIN, timeout=30)
        elapsed = time.monotonic() - began
    finally:
        del os.environ["RABBITMQ_URL"]
    # Nothing listens there, so the answer is immediate: the time is the inner pytest's own
    # start-up, which a loaded machine (a cluster starting in another worker) can stretch.
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "RABBITMQ_URL is set to amqp://alice:****@127.0.0.1" in output
    assert "docker compose up -d" in output and "apt install rabbitmq-server" in output
    assert password not in output


def test_the_session_reports_where_its_broker_came_from(inner, rabbitmq_url) -> None:
    os.environ["RABBITMQ_URL"] = rabbitmq_url
    try:
        inner.makepyfile(test_uses="def test_a(rabbitmq_url):\n    assert rabbitmq_url\n")
        result = inner.runpytest_subprocess(*PLUGIN)
    finally:
        del os.environ["RABBITMQ_URL"]
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "RabbitMQ [34].* from RABBITMQ_URL: amqp://*:****@* (ready in *s)",
        "course: this run was on RabbitMQ [34].* (RABBITMQ_URL)",
    ])  # fmt: skip


def test_names_are_unique_and_their_queues_are_deleted_after_the_test(inner, rabbitmq_url) -> None:
    os.environ["RABBITMQ_URL"] = rabbitmq_url
    inner.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    inner.makepyfile(
        test_names="""
        import aio_pika, pathlib

        async def test_declares(names, rabbitmq_url):
            first, second = names.queue(), names.queue()
            assert first != second and names.exchange() != names.exchange()
            connection = await aio_pika.connect(rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                await channel.declare_queue(first, durable=True)
            pathlib.Path("declared.txt").write_text(first)
        """
    )
    try:
        result = inner.runpytest_subprocess(*PLUGIN)
    finally:
        del os.environ["RABBITMQ_URL"]
    result.assert_outcomes(passed=1)
    declared = (inner.path / "declared.txt").read_text()
    assert declared.startswith("course.test_declares.q.")

    import asyncio

    import aio_pika

    async def exists() -> bool:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            try:
                await channel.declare_queue(declared, passive=True)
                return True
            except aio_pika.exceptions.ChannelClosed:
                return False

    assert asyncio.run(exists()) is False, "the names fixture left its queue behind"


def test_client_library_logs_go_to_a_file_not_into_the_failure_report(inner) -> None:
    inner.makepyfile(
        test_noise="""
        import logging

        def test_fails():
            logging.getLogger("aiormq.connection").error("TRACEBACK " + "NOISE")
            logging.getLogger("connectors.rabbit.task.rmq_worker").error("the student's own")
            assert False
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(failed=1)
    report = result.stdout.str()
    assert "TRACEBACK NOISE" not in report, "aiormq's records must stay out of the report"
    assert "the student's own" in report, "the code under test's own logs still show"
    line = next(line for line in report.splitlines() if "aio-pika's own log lines" in line)
    assert "TRACEBACK NOISE" in Path(line.rsplit(" ", 1)[1]).read_text()

"""Lesson logs_level: a direct exchange routes by key: info, critical, something."""

import pytest

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names


async def test_each_level_reaches_the_loggers_bound_to_it(run, send, tmp_path):
    log_file = tmp_path / "logs.txt"
    to_stdout = run("logs_level", "to_stdout")
    to_file = run("logs_level", "to_file", cwd=tmp_path)
    await to_stdout.wait_for(" [*] Queue ")
    await to_file.wait_for(" [*] Queue ")

    await send("logs_level", "info", "an info")
    await send("logs_level", "critical", "a critical")
    await send("logs_level", "something", "a something")
    # Messages from one exchange keep their order in each queue: once this last one has
    # arrived, anything routed to a logger before it has arrived too.
    await send("logs_level", "critical", "the end")
    await to_stdout.wait_for(" [x] critical: 'the end'")
    await to_file.wait_for(" [x] Wrote critical: 'the end'")

    assert to_stdout.out[1:] == [
        " [x] info: 'an info'",
        " [x] critical: 'a critical'",
        " [x] critical: 'the end'",
    ], "stdout gets info and critical, not something" + to_stdout.report()
    assert log_file.read_text().splitlines() == ["critical: a critical", "critical: the end"], (
        "logs.txt gets critical only" + f"\n--- logs.txt:\n{log_file.read_text()}"
    )
    await to_stdout.stop_cleanly()
    await to_file.stop_cleanly()

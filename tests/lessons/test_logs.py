"""Lesson logs: with exclusive queues every logger gets every message; to_file.py appends."""

import pytest

from course.checks import eventually

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names


async def test_both_loggers_get_every_message_and_to_file_appends(run, send, tmp_path):
    log_file = tmp_path / "logs.txt"
    log_file.write_text("a line from before\n")
    to_stdout = run("logs", "to_stdout")
    to_file = run("logs", "to_file", cwd=tmp_path)
    await to_stdout.wait_for(" [*] Queue ")
    await to_file.wait_for(" [*] Queue ")

    sent = ["log-1", "log-2", "log-3"]
    for text in sent:
        await send("logs", text)

    why = "each logger should get every message: a queue of its own, bound to the exchange"
    await to_stdout.wait_for(" [x] 'log-3'", why=why)
    await to_file.wait_for(" [x] Wrote 'log-3'", why=why)
    printed = [line.removeprefix(" [x] ").strip("'") for line in to_stdout.out[1:]]
    assert printed == sent, "to_stdout.py should print every message" + to_stdout.report()
    assert log_file.read_text().splitlines() == ["a line from before", *sent], (
        "logs.txt should keep what it had and get every message appended"
        + f"\n--- logs.txt:\n{log_file.read_text()}"
        + to_file.report()
    )
    # Each logger had a server-named queue of its own (amq.gen-...), not a shared one.
    names = {to_stdout.out[0].split()[2], to_file.out[0].split()[2]}
    assert len(names) == 2 and all(name.startswith("amq.gen-") for name in names), names
    await to_stdout.stop_cleanly()
    await to_file.stop_cleanly()


async def test_the_chapters_shared_queue_splits_messages_between_loggers(
    run, send, queue_state, shape_differs, tmp_path
):
    first = run("logs", "to_stdout", "--shared")
    second = run("logs", "to_file", "--shared", cwd=tmp_path)
    await first.wait_for(" [*] Queue logger ")
    await second.wait_for(" [*] Queue logger ")
    differs = await shape_differs("logger", durable=True, auto_delete=True)
    assert differs is None, (
        "the shared queue `logger` should be durable (RabbitMQ 4.3 refuses a shared queue that "
        f"is not) and auto_delete (gone with its last logger), but the broker says: {differs}"
    )

    for text in ("log-1", "log-2"):
        await send("logs", text)
    await eventually(
        lambda: first.count(" [x] ") + second.count(" [x] ") >= 2,
        timeout=10,
        message=lambda: "the two messages should arrive" + first.report() + second.report(),
    )
    assert (first.count(" [x] "), second.count(" [x] ")) == (1, 1), (
        "on one shared queue the loggers compete: one message each"
        + first.report()
        + second.report()
    )
    await first.stop_cleanly()
    await second.stop_cleanly()
    assert await queue_state("logger") is None, "the shared queue should go with its last logger"

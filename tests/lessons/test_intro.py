"""Lesson intro: the broker keeps messages until a receiver comes; receivers share round robin.
The queue `hello` is durable (RabbitMQ 4.3 refuses a transient one), and one that exists with
another shape gets one plain sentence, not a traceback."""

import pytest

from course.checks import eventually

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names


async def test_messages_sent_while_no_receiver_runs_wait_for_one(
    run, send, queue_state, shape_differs
):
    await send("intro", "first")
    await send("intro", "second")
    await eventually(
        lambda: _is(queue_state("hello"), (4, 0)),
        timeout=5,
        message="after two sender runs and no receiver, the queue `hello` should hold 4 messages",
    )
    differs = await shape_differs("hello", durable=True)
    assert differs is None, (
        "the queue `hello` should be durable (RabbitMQ 4.3 refuses a shared queue that is not), "
        f"but the broker says: {differs}"
    )

    receiver = run("intro", "receiver")
    await receiver.wait_for(" [x] Received", times=4)
    assert receiver.received() == ["0 - first", "1 - first", "0 - second", "1 - second"], (
        "the receiver should get every message sent before it started, in order" + receiver.report()
    )
    await receiver.stop_cleanly()


async def test_two_receivers_share_the_messages_round_robin(run, send):
    first, second = run("intro", "receiver"), run("intro", "receiver")
    for receiver in (first, second):
        await receiver.wait_for(" [*] Waiting for messages", why="two receivers should both run")

    for text in ("a", "b", "c"):
        await send("intro", text)
    everything = {f"{i} - {text}" for text in "abc" for i in range(2)}
    await _wait(lambda: len(first.received()) + len(second.received()) >= 6, first, second)

    got_first, got_second = set(first.received()), set(second.received())
    assert got_first | got_second == everything and not got_first & got_second, (
        "every message should reach exactly one receiver" + first.report() + second.report()
    )
    for text in "abc":  # each sender run sends two messages: one for each receiver, in turn
        pair = {f"0 - {text}", f"1 - {text}"}
        assert len(pair & got_first) == 1 and len(pair & got_second) == 1, (
            "round robin: the two messages of one sender run should go one to each receiver"
            + first.report()
            + second.report()
        )
    await first.stop_cleanly()
    await second.stop_cleanly()


async def test_the_combined_example_sends_and_receives(run):
    example = run("intro", "intro")
    await example.wait_for(" [x] Done with", times=2)
    assert example.received() == ["0 - Hello World!", "1 - Hello World!"], example.report()
    await example.stop_cleanly()


async def _is(state, expected) -> bool:
    return await state == expected


async def _wait(condition, *scripts) -> None:
    await eventually(
        condition,
        timeout=10,
        message=lambda: "not every message arrived" + "".join(s.report() for s in scripts),
    )


@pytest.mark.parametrize("shape", ["transient", "quorum"])
@pytest.mark.parametrize("name", ["sender", "receiver", "intro"])
async def test_a_hello_of_another_shape_gets_one_plain_sentence(
    run, amqp_admin, broker, name, shape
):
    """A `hello` left on the broker with another shape: the script says so, in one line."""
    if shape == "transient" and broker.denies_transient:
        pytest.skip("this broker refuses transient queues, so none can be left over from before")
    channel = await amqp_admin.channel()
    if shape == "transient":  # what the lessons declared before RabbitMQ 4.3
        await channel.declare_queue("hello", durable=False)
    else:  # a student's own experiment with the same name
        await channel.declare_queue("hello", durable=True, arguments={"x-queue-type": "quorum"})

    script = run("intro", name)
    assert await script.finished() == 1, "a refused declaration should exit 1" + script.report()
    error = script.one_line_error()
    assert "'hello'" in error, error
    if shape == "transient":
        assert "delete_queue hello" in error and "Delete" in error, (
            "the sentence should say how to delete the old queue: " + error
        )
    else:
        assert "x-queue-type" in error, error

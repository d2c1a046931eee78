"""Lesson ack: an unacknowledged message survives its receiver's death; with no_ack it does not.
Part 2: a durable queue keeps its persistent messages over a broker restart (on a node these
checks start for themselves: never the session's broker, never a system broker)."""

import asyncio

import aio_pika
import pytest
from aio_pika import DeliveryMode

from course.broker import debian, node
from course.checks import eventually

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names

NO_QUEUE = "there is no such queue"


async def test_a_receiver_killed_mid_work_does_not_lose_the_message(run, send, queue_state):
    doomed = run("ack", "receiver", work=60)
    await doomed.wait_for(" [*] Waiting for messages")
    await send("ack", "job-1")
    await doomed.wait_for(" [x] Received 'job-1' (redelivered: False)")

    doomed.stop()  # SIGKILL in the middle of the work: no ack was sent
    await eventually(
        lambda: _is(queue_state("ack"), (1, 0)),
        timeout=5,
        message=lambda: (
            "after the receiver was killed mid-work, its unacknowledged message "
            "should be back in the queue `ack`" + doomed.report()
        ),
    )

    successor = run("ack", "receiver")
    await successor.wait_for(" [x] Received 'job-1' (redelivered: True)")
    await successor.wait_for(" [x] Done with 'job-1', acknowledged")
    await successor.stop_cleanly()
    # Had the ack not reached the broker, closing the connection would requeue the message.
    assert await queue_state("ack") == (0, 0), (
        "the message should be gone once acknowledged (is message.ack() awaited?)"
        + successor.report()
    )


async def test_ctrl_c_mid_work_gives_the_message_back(run, send, queue_state):
    receiver = run("ack", "receiver", work=60)
    await receiver.wait_for(" [*] Waiting for messages")
    await send("ack", "job-2")
    await receiver.wait_for(" [x] Received 'job-2'")
    await receiver.stop_cleanly()  # promptly, not after the 60 s of work
    assert await queue_state("ack") == (1, 0), (
        "the message a receiver was working on when stopped should be back in the queue"
        + receiver.report()
    )


async def test_with_no_ack_a_killed_receiver_loses_the_message(run, send, queue_state):
    doomed = run("ack", "receiver", "--no-ack", work=60)
    await doomed.wait_for(" [*] Waiting for messages")
    await send("ack", "job-1")
    await doomed.wait_for(" [x] Received 'job-1'")

    doomed.stop()  # SIGKILL
    await eventually(  # the broker has dropped the dead consumer, and the queue is empty
        lambda: _is(queue_state("ack"), (0, 0)),
        timeout=5,
        message=lambda: (
            "with no_ack the broker forgets a message when it delivers it, so the "
            "queue should be empty after the receiver dies" + doomed.report()
        ),
    )
    await send("ack", "job-2")
    successor = run("ack", "receiver")
    await successor.wait_for(" [x] Done with 'job-2'")
    assert successor.received() == ["job-2"], (
        "job-1 was lost with the killed receiver; only job-2 should arrive" + successor.report()
    )
    await successor.stop_cleanly()


async def test_the_sender_puts_persistent_messages_in_a_durable_queue(send, shape_differs, take):
    await send("ack", "job-1")
    differs = await shape_differs("ack", durable=True)
    assert differs is None, (
        f"the work queue `ack` should be durable, but the broker says: {differs}"
    )
    taken = await take("ack")
    assert [m.body for m in taken] == [b"job-1"], taken
    assert taken[0].delivery_mode == DeliveryMode.PERSISTENT, (
        "ack/sender.py should publish persistent messages (delivery_mode=PERSISTENT), "
        f"but the message had delivery_mode={taken[0].delivery_mode}"
    )


@pytest.mark.timeout(150)
async def test_after_a_broker_restart_only_persistent_messages_in_a_durable_queue_are_left(
    run, broker
):
    private = await asyncio.to_thread(_start_private_node, broker.major)
    try:
        url = private.url
        send = run("ack", "durability", "send", url=url)
        assert await send.finished(timeout=30) == 0, send.report()
        if private.denies_transient:  # RabbitMQ 4.3's defaults: the transient queue is refused
            refused = [line for line in send.out if line.startswith(" [!] Refused:")]
            assert len(refused) == 1 and "durable=True" in refused[0], (
                "on RabbitMQ 4.3 `send` should say in one line that the transient queue was "
                "refused, and what to declare instead" + send.report()
            )
        before = await _check(run, url)
        made = not private.denies_transient
        assert before == {
            "durable": "2 message(s) ['persistent', 'not persistent']",
            "transient": "1 message(s) ['persistent']" if made else NO_QUEUE,
        }, f"before the restart, check should show every message sent; it printed {before}"

        # check took nothing away: its unacknowledged gets went back when it closed
        await _wait_ready(url, "durable", 2)
        waiting = run("ack", "receiver", url=url)  # a receiver's connection, closed by the restart
        await waiting.wait_for(" [*] Waiting for messages")
        await asyncio.to_thread(node.restart_app, private.started)

        assert await waiting.finished(timeout=20) == 1, waiting.report()
        assert "restarting" in waiting.one_line_error(), waiting.report()
        after = await _check(run, url)
        assert after == {
            "durable": "1 message(s) ['persistent']",
            "transient": NO_QUEUE,
        }, (
            "after the restart the durable queue should hold only its persistent message, and "
            f"the transient queue should be gone; check printed {after}"
        )
    finally:
        await asyncio.to_thread(private.stop)


def _start_private_node(major: int):
    """A private node of the session broker's major version, started for one check."""
    if major >= 4:
        try:
            install = debian.ensure()
        except debian.CannotBuild as error:
            pytest.skip(f"no RabbitMQ 4.x node can be started here: {error}")
    else:
        install = node.local_install()
        if install is None:
            pytest.skip("no local rabbitmq-server install to start a private node of")
    return node.PrivateNode(install, management=False).start()


async def _check(run, url: str) -> dict[str, str]:
    """What `durability.py check` says about each queue: {"durable": "1 message(s) [...]"}."""
    check = run("ack", "durability", "check", url=url)
    assert await check.finished(timeout=20) == 0, check.report()
    found = {}
    for line in check.out:
        name, _, said = line.removeprefix(" [x] Queue ").partition(": ")
        found[name.strip("'")] = said
    return found


async def _wait_ready(url: str, queue: str, count: int) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()

        async def ready() -> bool:
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count == count

        await eventually(
            ready,
            timeout=10,
            message=f"after `durability.py check` the queue {queue!r} should still hold its "
            f"{count} messages: check only looks, and takes nothing away",
        )


async def _is(state, expected) -> bool:
    return await state == expected

"""Lesson ack: an unacknowledged message survives its receiver's death; with no_ack it does not."""

from course.checks import eventually


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


async def _is(state, expected) -> bool:
    return await state == expected

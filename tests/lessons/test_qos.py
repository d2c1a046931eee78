"""Lesson qos: prefetch_count caps how many messages one receiver holds, and it is reached."""

import pytest
from aio_pika import DeliveryMode

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names


async def test_a_busy_receiver_does_not_hoard_messages(run, send):
    busy = run("qos", "receiver", work=60)
    await busy.wait_for(" [*] Waiting for messages (prefetch_count=1)")
    await send("qos", "task-0")
    await busy.wait_for(" [x] Received 'task-0'")

    free = run("qos", "receiver")
    await free.wait_for(" [*] Waiting for messages (prefetch_count=1)")
    for i in range(1, 5):
        await send("qos", f"task-{i}")

    await free.wait_for(
        " [x] Done with",
        times=4,
        why="with prefetch_count=1 a receiver busy with one message may not take more, so the "
        "free receiver should get and finish all four" + busy.report(),
    )
    assert free.received() == ["task-1", "task-2", "task-3", "task-4"], (
        "with prefetch_count=1 the busy receiver may not take more; the free one gets them all"
        + free.report()
        + busy.report()
    )
    assert busy.received() == ["task-0"], "the busy receiver hoarded messages" + busy.report()


async def test_one_receiver_runs_prefetch_count_handlers_at_once_and_no_more(run, send):
    for i in range(6):
        await send("qos", f"task-{i}")
    receiver = run("qos", "receiver", "--prefetch", "3", work=1.5)
    await receiver.wait_for(" [x] Done with", times=6)

    # Count handlers in flight from the order of its own Received/Done lines.
    running, most = 0, 0
    for line in receiver.out:
        running += " [x] Received " in line
        running -= " [x] Done with " in line
        most = max(most, running)
    assert most == 3, (
        f"with --prefetch 3, 3 handlers should run at once, never more; saw {most}"
        + receiver.report()
    )
    await receiver.stop_cleanly()


async def test_the_sender_puts_persistent_messages_in_the_durable_queue_ack(
    send, shape_differs, take
):
    await send("qos", "task-0")
    differs = await shape_differs("ack", durable=True)
    assert differs is None, (
        f"the work queue `ack` should be durable, but the broker says: {differs}"
    )
    taken = await take("ack")
    assert [m.body for m in taken] == [b"task-0"], taken
    assert taken[0].delivery_mode == DeliveryMode.PERSISTENT, (
        "qos/sender.py should publish persistent messages (delivery_mode=PERSISTENT), "
        f"but the message had delivery_mode={taken[0].delivery_mode}"
    )

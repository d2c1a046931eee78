"""Lesson confirms: every way publishes every message; ack, nack, drop and return look apart."""

import re

import pytest

from course.checks import eventually

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names

QUEUES = ("confirms", "confirms_full")  # the lesson's fixed names: deleted before and after


@pytest.fixture(autouse=True)
async def no_leftover_queues(amqp_admin):
    async def delete() -> None:
        channel = await amqp_admin.channel()
        async with channel:
            for queue in QUEUES:
                await channel.queue_delete(queue)

    await delete()
    yield
    await delete()


async def waiting(queue_state, count: int) -> bool:
    return await queue_state("confirms") == (count, 0)


@pytest.mark.parametrize("way", ["none", "each", "batch", "async"])
async def test_each_way_publishes_every_message(run, queue_state, way):
    publisher = run("confirms", "publish", "--way", way, "--count", "300", "--batch", "50")
    assert await publisher.finished(timeout=20) == 0, publisher.report()
    row = re.compile(rf"^ {way} +.* 300 +\d+\.\d\d +\d+$")
    assert any(row.match(line) for line in publisher.out), (
        f"publish.py --way {way} prints its row: way, what it waits for, count, seconds, rate"
        + publisher.report()
    )
    await eventually(
        lambda: waiting(queue_state, 300),
        timeout=5,
        message=lambda: f"--way {way}: the queue `confirms` should hold all 300 messages",
    )


async def test_all_ways_print_one_table_with_the_ratio_to_each(run):
    publisher = run("confirms", "publish", "--way", "all", "--count", "200")
    assert await publisher.finished(timeout=30) == 0, publisher.report()
    header, *rows = publisher.out
    assert header.split()[-2:] == ["vs", "each"], publisher.report()
    assert [row.split()[0] for row in rows] == ["none", "each", "batch", "async"], (
        publisher.report()
    )
    assert rows[1].endswith(" 1.0x"), "each is the unit of the ratios" + publisher.report()
    assert all(re.search(r" \d+\.\dx$", row) for row in rows), publisher.report()


async def test_ack_nack_dropped_and_returned_look_apart(run, queue_state):
    outcomes = run("confirms", "outcomes")
    assert await outcomes.finished() == 0, outcomes.report()
    assert [line.split(":")[:2] for line in outcomes.out] == [
        [" [x] into a queue with room", " Ack"],
        [" [!] into the same queue, now full", " Nack"],
        [" [x] to a routing key no queue has", " Ack"],
        [" [!] the same, with mandatory=True", " Return"],
    ], outcomes.report()
    assert "312 NO_ROUTE" in outcomes.out[-1], outcomes.report()
    assert await queue_state("confirms_full") is None, "outcomes.py deletes its queue"

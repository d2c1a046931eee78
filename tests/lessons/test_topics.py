"""Lesson topics: patterns route by words; one copy per queue; `#` is fanout; mandatory returns."""

import pytest

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names

EXCHANGE = "topic_logs"  # the lesson's fixed name: deleted before and after each check here


@pytest.fixture(autouse=True)
async def no_leftover_exchange(amqp_admin):
    async def delete() -> None:
        channel = await amqp_admin.channel()
        async with channel:
            await channel.exchange_delete(EXCHANGE)

    await delete()
    yield
    await delete()


async def started(run, *patterns):
    receiver = run("topics", "receiver", *patterns)
    await receiver.wait_for(" [*] Queue ")
    return receiver


async def test_patterns_route_by_words(run, send):
    critical = await started(run, "*.critical")
    disk = await started(run, "disk.*")
    for key in ("disk.critical", "db.critical", "disk.info", "db.info", "disk.sda.critical"):
        await send("topics", key, f"about {key}")
    # Messages from one exchange keep their order in each queue: once this last one has arrived
    # at both, anything routed to them before has arrived too.
    await send("topics", "disk.critical", "the end")
    await critical.wait_for("'the end'")
    await disk.wait_for("'the end'")
    assert critical.out[1:] == [
        " [x] disk.critical: 'about disk.critical'",
        " [x] db.critical: 'about db.critical'",
        " [x] disk.critical: 'the end'",
    ], "*.critical gets exactly the two-word keys ending in critical" + critical.report()
    assert disk.out[1:] == [
        " [x] disk.critical: 'about disk.critical'",
        " [x] disk.info: 'about disk.info'",
        " [x] disk.critical: 'the end'",
    ], "disk.* gets exactly the two-word keys starting with disk" + disk.report()
    await critical.stop_cleanly()
    await disk.stop_cleanly()


async def test_a_message_matching_two_bindings_of_one_queue_arrives_once(run, send):
    both = await started(run, "disk.*", "*.critical")
    await send("topics", "disk.critical", "matches both")
    await send("topics", "db.critical", "matches the second")
    await send("topics", "disk.info", "the end")
    await both.wait_for("'the end'")
    assert both.count("'matches both'") == 1, (
        "a queue gets one copy of a message, however many of its bindings match" + both.report()
    )
    assert both.count("'matches the second'") == 1, (
        "each pattern is a binding of the queue" + both.report()
    )
    await both.stop_cleanly()


async def test_hash_alone_is_fanout(run, send):
    everything = await started(run, "#")
    keys = ["kern", "a.b.c", "disk.critical", ""]
    for n, key in enumerate(keys):
        await send("topics", key, f"message-{n}")
    await everything.wait_for(f"'message-{len(keys) - 1}'")
    expected = [f" [x] {key}: 'message-{n}'" for n, key in enumerate(keys)]
    assert everything.out[1:] == expected, (
        "a queue bound with # alone gets every message, whatever its key" + everything.report()
    )
    await everything.stop_cleanly()


async def test_an_unmatched_key_is_dropped_and_mandatory_returns_it(run, send):
    other = await started(run, "disk.*")
    dropped = await send("topics", "nothing.here", "dropped")
    assert dropped.out == [" [x] Sent 'dropped' with routing key 'nothing.here'"], (
        "without mandatory the sender cannot tell that nothing matched" + dropped.report()
    )
    returned = await send("topics", "nothing.here", "returned", "--mandatory")
    assert returned.out == [
        " [!] Returned 'returned': no binding matches the routing key 'nothing.here'"
    ], "with mandatory=True the broker returns an unroutable message" + returned.report()
    routed = await send("topics", "disk.here", "routed", "--mandatory")
    assert routed.out == [" [x] Sent 'routed' with routing key 'disk.here'"], routed.report()
    await other.wait_for("'routed'")
    assert other.count("dropped") == 0 and other.count("returned") == 0, other.report()
    await other.stop_cleanly()

"""Lesson rpc: answers find their call; servers share requests; timeouts, strays, late replies."""

import re

import pytest

from course.broker.common import wait_for_direct_reply_to
from course.checks import holds_for

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names

QUEUE = "rpc_queue"  # the lesson's fixed name: deleted before and after each check here


@pytest.fixture(scope="module", autouse=True)
def direct_reply_to_works(lesson_url):
    """client.py --direct uses direct reply-to; a 4.0 node that has just started may lose the
    first reply (312 NO_ROUTE): wait for a round trip that works."""
    wait_for_direct_reply_to(lesson_url)


@pytest.fixture(autouse=True)
async def no_leftover_queue(amqp_admin):
    async def delete() -> None:
        channel = await amqp_admin.channel()
        async with channel:
            await channel.queue_delete(QUEUE)

    await delete()
    yield
    await delete()


async def server(run, *args, work=0.0):
    started = run("rpc", "server", *args, work=work)
    await started.wait_for(" [*] ")
    return started


def reply_queue(client) -> str:
    line = next(line for line in client.out if "Replies come to" in line)
    return line.split()[-1]


async def test_a_call_gets_its_answer_through_reply_to_and_correlation_id(run):
    answering = await server(run)
    client = run("rpc", "client", "10")
    assert await client.finished() == 0, client.report()
    assert " [.] fib(10) = 55" in client.out, client.report()
    asked = re.search(r"correlation_id (\w+)", "\n".join(client.out)).group(1)
    queue = reply_queue(client)
    assert queue.startswith("amq.gen-"), "the reply queue is server-named" + client.report()
    await answering.wait_for(f" [.] fib(10) asked by {queue}, correlation_id {asked}")
    await answering.wait_for(" [x] Replied 55")
    await answering.stop_cleanly()


async def test_two_servers_share_the_requests(run):
    first = await server(run, "--name", "A", work=0.5)
    second = await server(run, "--name", "B", work=0.5)
    client = run("rpc", "client", "1", "2", "3", "4", "--together")
    assert await client.finished() == 0, client.report()
    answers = sorted(line for line in client.out if line.startswith(" [.] "))
    assert answers == [f" [.] fib({n}) = {f}" for n, f in ((1, 1), (2, 1), (3, 2), (4, 3))], (
        "every call gets its own answer, whatever order they come in" + client.report()
    )
    assert first.count("Replied") >= 1 and second.count("Replied") >= 1, (
        "both servers take requests from the one queue" + first.report() + second.report()
    )
    assert first.count("Replied") + second.count("Replied") == 4
    await first.stop_cleanly()
    await second.stop_cleanly()


async def test_a_busy_server_leaves_waiting_requests_to_another(run):
    first = await server(run, "--name", "A", work=1.0)
    client = run("rpc", "client", "1", "2", "3", "4", "--together")
    await first.wait_for(" [.] A: fib(")
    second = await server(run, "--name", "B", work=1.0)
    assert await client.finished(timeout=15) == 0, client.report()
    assert second.count("Replied") >= 1, (
        "a server with prefetch_count=1 holds one request; the waiting ones go to a server "
        "that starts later" + first.report() + second.report()
    )
    await first.stop_cleanly()
    await second.stop_cleanly()


async def test_with_no_server_the_client_times_out_and_the_request_expires(run, amqp_admin):
    channel = await amqp_admin.channel()
    await channel.declare_queue(QUEUE, durable=True)  # left by a server that has stopped
    client = run("rpc", "client", "10", "--timeout", "1")
    assert await client.finished() == 1, "a call with no answer exits 1" + client.report()
    assert client.out[-1] == " [!] fib(10): no reply within 1 s", client.report()
    assert not client.err, "a timeout is no crash" + client.report()
    late = await server(run)
    await holds_for(
        lambda: late.count("fib(10)") == 0,
        seconds=1.0,
        message=lambda: "a request that expired must not reach a server later" + late.report(),
    )
    await late.stop_cleanly()


async def test_a_reply_with_an_unknown_correlation_id_is_ignored(run):
    await server(run, work=1.5)
    client = run("rpc", "client", "7", "--timeout", "10")
    await client.wait_for(" [>] Asked for fib(7)")
    stray = run("rpc", "stray", reply_queue(client))
    assert await stray.finished() == 0, stray.report()
    await client.wait_for(
        " [?] Ignored a reply nobody waits for: '42' (correlation_id not-a-call-of-yours)"
    )
    assert await client.finished() == 0, client.report()
    assert client.out[-1] == " [.] fib(7) = 13", client.report()


async def test_an_answer_after_the_client_gave_up_is_ignored_and_nothing_breaks(run):
    slow = await server(run, work=1.5)
    client = run("rpc", "client", "10", "--timeout", "0.5", "--linger", "2.5")
    assert await client.finished() == 1, client.report()
    assert client.out[-2:] == [
        " [!] fib(10): no reply within 0.5 s",
        f" [?] Ignored a reply nobody waits for: '55' (correlation_id {client.out[1].split()[-1]})",
    ], client.report()
    assert not client.err, client.report()
    await slow.wait_for(" [x] Replied 55")
    again = run("rpc", "client", "7")
    assert await again.finished() == 0 and again.out[-1] == " [.] fib(7) = 13", again.report()
    await slow.stop_cleanly()


async def test_direct_reply_to_needs_no_reply_queue(run):
    answering = await server(run)
    client = run("rpc", "client", "10", "--direct")
    assert await client.finished() == 0, client.report()
    assert client.out[0] == " [*] Replies come to amq.rabbitmq.reply-to", client.report()
    assert client.out[-1] == " [.] fib(10) = 55", client.report()
    await answering.wait_for(" [.] fib(10) asked by amq.rabbitmq.reply-to.")
    await answering.stop_cleanly()

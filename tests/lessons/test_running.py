"""What every lesson script does: stop cleanly on Ctrl+C / SIGTERM, explain a missing broker,
and end with one plain sentence when the broker refuses something (lesson.py)."""

import signal
import subprocess
import sys

import pytest
from yarl import URL

from course.broker import free_port

# The lessons' fixed queue and exchange names: never two such tests at once.
pytestmark = pytest.mark.fixed_names

RECEIVERS = [
    ("intro", "intro"),
    ("intro", "receiver"),
    ("ack", "receiver"),
    ("qos", "receiver"),
    ("logs", "to_stdout"),
    ("logs", "to_file"),
    ("logs_level", "to_stdout"),
    ("logs_level", "to_file"),
    ("rpc", "server"),
]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
@pytest.mark.parametrize(("lesson", "script"), RECEIVERS, ids=["/".join(r) for r in RECEIVERS])
async def test_a_receiver_stops_cleanly(run, tmp_path, lesson, script, how):
    receiver = run(lesson, script, cwd=tmp_path)
    await receiver.wait_for(" [*] ")
    await receiver.stop_cleanly(how)


def test_without_a_broker_a_script_says_what_to_do(lessons_dir, tmp_path):
    url = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/"
    result = subprocess.run(
        [sys.executable, str(lessons_dir / "ack" / "receiver.py")],
        cwd=tmp_path,
        env={
            "RABBITMQ_URL": url,
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(lessons_dir.parents[1]),
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "make broker" in result.stderr and "RABBITMQ_URL" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "****" in result.stderr


# A script in the lessons' style that makes the broker refuse something, at the place named by
# its argument. lesson.py must turn each refusal into one sentence and exit code 1.
REFUSED = """
import asyncio
import sys

from aio_pika import Message

from connectors.rabbit import lesson


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        channel = await connection.channel()
        missing = await channel.get_exchange("course.lessons.no-such-exchange", ensure=False)
        if sys.argv[1] == "declare":  # a transient shared queue: RabbitMQ 4.3 closes the connection
            await channel.declare_queue("course.lessons.transient", durable=False)
        elif sys.argv[1] == "publish":  # to an exchange that does not exist: the channel closes
            await missing.publish(Message(b"lost"), routing_key="")
        elif sys.argv[1] == "callback":  # the same, inside a consumer callback
            queue = await channel.declare_queue(exclusive=True)

            async def forward(message) -> None:
                await missing.publish(Message(message.body), routing_key="")

            await queue.consume(forward)
            await channel.default_exchange.publish(Message(b"go"), routing_key=queue.name)
        print(" [*] Waiting for messages. To exit press CTRL+C")
        await asyncio.Future()


lesson.run(main())
"""


@pytest.mark.parametrize("where", ["declare", "publish", "callback"])
async def test_a_broker_refusal_ends_a_script_with_one_sentence(run, broker, tmp_path, where):
    if where == "declare" and not broker.denies_transient:
        pytest.skip(f"{broker.flavour()} accepts transient shared queues")
    script_file = tmp_path / "refused.py"
    script_file.write_text(REFUSED)
    script = run(script_file, "", where)
    assert await script.finished() == 1, "a broker refusal should end the script" + script.report()
    error = script.one_line_error()
    if where == "declare":
        assert "durable=True" in error and "4.3" in error, error
    else:
        assert "no exchange 'course.lessons.no-such-exchange'" in error, error


@pytest.mark.parametrize("problem", ["password", "vhost"])
async def test_a_refused_login_or_vhost_gets_one_sentence(run, lesson_url, problem):
    url = URL(lesson_url)
    if problem == "password":
        url = url.with_password("not-the-password")
    else:
        url = url.with_path("/course-lessons-no-such-vhost")
    script = run("ack", "receiver", url=str(url))
    assert await script.finished() == 1, script.report()
    error = script.one_line_error()
    assert ("login" if problem == "password" else "vhost") in error, error
    assert ":not-the-password@" not in error, "the password should be masked: " + error
    assert f":{URL(lesson_url).password}@" not in error, "the password should be masked: " + error

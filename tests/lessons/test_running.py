"""What every lesson script does: stop cleanly on Ctrl+C / SIGTERM, explain a missing broker."""

import signal
import subprocess
import sys

import pytest

from course.broker import free_port

RECEIVERS = [
    ("intro", "intro"),
    ("intro", "receiver"),
    ("ack", "receiver"),
    ("qos", "receiver"),
    ("logs", "to_stdout"),
    ("logs", "to_file"),
    ("logs_level", "to_stdout"),
    ("logs_level", "to_file"),
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

"""`make student-edition`: what students receive works on its own, and holds no answers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course import impl, vhost

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edition") / "course"
    subprocess.run(
        ["make", "-s", "student-edition", f"OUT={out}"], cwd=impl.ROOT, check=True, timeout=120
    )
    return out


def run_pytest(root: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RABBITMQ_URL": url, "PYTHONPATH": str(root)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-vv", "-p", "no:cacheprovider"],
        cwd=root, env=env, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip


def test_the_edition_holds_no_answers_and_no_author_tooling(edition: Path) -> None:
    answers_and_author_tools = (
        "solutions", "course/mistakes", "course/grade.py", "course/export.py", "tests/course",
        "tests/reference", "tests/lessons", "benchmarks", ".ci",
    )  # fmt: skip
    for excluded in answers_and_author_tools:
        assert not (edition / excluded).exists(), f"{excluded} must not be exported"
    for name in ("Makefile", "README.md"):
        text = (edition / name).read_text()
        assert "author-only" not in text and "--impl solutions" not in text, name
    for needed in (
        "connectors/rabbit/task/rmq_worker.py",
        "connectors/rabbit/task/rmq_logger.py",
        "connectors/rabbit/task/README.md",
        "tests/connectors/rabbit/test_rmq_worker.py",
        "tests/connectors/rabbit/test_rmq_logger.py",
        "course/pytest_plugin.py",
        "course/broker/__init__.py",
        "course/broker/debian.py",
        "docker-compose.yml",
        "pyproject.toml",
    ):
        assert (edition / needed).is_file(), f"{needed} is missing from the edition"
    stub = (edition / "connectors/rabbit/task/rmq_worker.py").read_text()
    assert stub == (impl.STUDENT_DIR / "rmq_worker.py").read_text()


def test_pytest_is_red_on_the_stubs_and_green_with_the_reference(edition, rabbitmq_url) -> None:
    red = run_pytest(edition, rabbitmq_url)
    assert red.returncode == 1, red.stdout[-3000:]
    assert "Not implemented yet: " in red.stdout
    assert "= score =" in red.stdout

    for name in impl.MODULES:
        shutil.copy2(impl.REFERENCE_DIR / f"{name}.py", edition / "connectors/rabbit/task")
    green = run_pytest(edition, rabbitmq_url)
    assert green.returncode == 0, green.stdout[-3000:]
    assert " passed" in green.stdout and "skipped" in green.stdout  # starred ones stay skipped


@pytest.mark.fixed_names
def test_the_lessons_run_in_the_edition(edition, broker, tmp_path) -> None:
    place = vhost.create(broker.url, broker.management_url, prefix="course-export")
    env = {**os.environ, "RABBITMQ_URL": place.url, "PYTHONPATH": str(edition)}
    env["LESSON_WORK_SECONDS"] = "0.1"
    log = tmp_path / "receiver.log"
    try:
        sent = subprocess.run(
            [sys.executable, "connectors/rabbit/intro/sender.py", "from the edition"],
            cwd=edition, env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert sent.returncode == 0 and "Sent '1 - from the edition'" in sent.stdout, sent
        with log.open("w") as out:
            receiver = subprocess.Popen(
                [sys.executable, "connectors/rabbit/intro/receiver.py"],
                cwd=edition, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while "Done with '1 - from the edition'" not in log.read_text():
                assert time.monotonic() < deadline, f"the receiver printed: {log.read_text()}"
                time.sleep(0.05)
        finally:
            receiver.send_signal(signal.SIGTERM)
            code = receiver.wait(timeout=15)
        assert code == 0, log.read_text()
    finally:
        place.delete()

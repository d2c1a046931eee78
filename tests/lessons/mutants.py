"""Prove that each lesson check goes red when its lesson breaks.

    python tests/lessons/mutants.py            # every mutant
    python tests/lessons/mutants.py ack        # the mutants whose name contains "ack"

Each mutant is a copy of connectors/ with one deliberate mistake (often one the chapter itself
made). The lesson checks named for it run on that copy (``LESSONS_DIR``) and must fail; the
script exits 1 if any mutant survives. It is an author's tool, not part of ``make test``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# name: (edits as (file under connectors/rabbit, old text, new text), checks that must fail)
MUTANTS: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "intro: sender does not declare the queue (messages to a missing queue are dropped)": (
        [("intro/sender.py", 'await channel.declare_queue("hello")', "pass")],
        ["test_intro.py::test_messages_sent_while_no_receiver_runs_wait_for_one"],
    ),
    "intro: receiver consumes exclusively (no second receiver, no round robin)": (
        [("intro/receiver.py", "no_ack=True)", "no_ack=True, exclusive=True)")],
        ["test_intro.py::test_two_receivers_share_the_messages_round_robin"],
    ),
    "ack: receiver consumes with no_ack=True": (
        [("ack/receiver.py", "no_ack=args.no_ack)", "no_ack=True)")],
        ["test_ack.py::test_a_receiver_killed_mid_work_does_not_lose_the_message"],
    ),
    "ack: message.ack() without await (the chapter's slip)": (
        [("ack/receiver.py", "await message.ack()", "message.ack()")],
        ["test_ack.py::test_a_receiver_killed_mid_work_does_not_lose_the_message"],
    ),
    "ack: --no-ack ignored (acks anyway)": (
        [("ack/receiver.py", "no_ack=args.no_ack)", "no_ack=False)")],
        ["test_ack.py::test_with_no_ack_a_killed_receiver_loses_the_message"],
    ),
    "qos: no set_qos (a busy receiver hoards, and runs every message at once)": (
        [("qos/receiver.py", "await channel.set_qos(prefetch_count=args.prefetch)", "pass")],
        [
            "test_qos.py::test_a_busy_receiver_does_not_hoard_messages",
            "test_qos.py::test_one_receiver_runs_prefetch_count_handlers_at_once_and_no_more",
        ],
    ),
    "qos: prefetch_count stuck at 1 (--prefetch 3 never reached)": (
        [("qos/receiver.py", "prefetch_count=args.prefetch)", "prefetch_count=1)")],
        ["test_qos.py::test_one_receiver_runs_prefetch_count_handlers_at_once_and_no_more"],
    ),
    "logs: loggers share the queue 'logger' (the chapter's first try)": (
        [
            ("logs/to_stdout.py", "    if args.shared:", "    if True:"),
            ("logs/to_file.py", "    if args.shared:", "    if True:"),
        ],
        ["test_logs.py::test_both_loggers_get_every_message_and_to_file_appends"],
    ),
    "logs: to_file.py opens logs.txt with 'w' (the chapter's slip)": (
        [("logs/to_file.py", 'open("logs.txt", "a")', 'open("logs.txt", "w")')],
        ["test_logs.py::test_both_loggers_get_every_message_and_to_file_appends"],
    ),
    "logs_level: to_stdout.py not bound to info": (
        [("logs_level/to_stdout.py", 'await queue.bind(logs, routing_key="info")', "pass")],
        ["test_logs_level.py::test_each_level_reaches_the_loggers_bound_to_it"],
    ),
    "logs_level: a fanout exchange instead of direct (routing keys ignored)": (
        [
            (f"logs_level/{name}.py", "ExchangeType.DIRECT)", "ExchangeType.FANOUT)")
            for name in ("sender", "to_stdout", "to_file")
        ],
        ["test_logs_level.py::test_each_level_reaches_the_loggers_bound_to_it"],
    ),
    "every lesson: no SIGTERM handler (killed, not stopped)": (
        [("lesson.py", "loop.add_signal_handler(stop_signal, task.cancel)", "pass")],
        ["test_running.py::test_a_receiver_stops_cleanly"],
    ),
    "every lesson: prints are block-buffered in a pipe": (
        [("lesson.py", "sys.stdout.reconfigure(line_buffering=True)", "pass")],
        ["test_running.py::test_a_receiver_stops_cleanly[ack/receiver-ctrl_c]"],
    ),
    "every lesson: the no-broker message shows the password": (
        [
            (
                "lesson.py",
                'return str(parsed.with_password("****")) if parsed.password else url',
                "return url",
            )
        ],
        ["test_running.py::test_without_a_broker_a_script_says_what_to_do"],
    ),
}


def make_copy(edits: list[tuple[str, str, str]], into: Path) -> Path:
    shutil.copytree(ROOT / "connectors", into / "connectors", ignore=shutil.ignore_patterns(
        "__pycache__", "task"))  # fmt: skip
    lessons = into / "connectors" / "rabbit"
    for file, old, new in edits:
        path = lessons / file
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"mutant out of date: {old!r} is not in {file} exactly once")
        path.write_text(text.replace(old, new))
    return lessons


def main(argv: list[str]) -> int:
    wanted = [name for name in MUTANTS if not argv or any(word in name for word in argv)]
    survivors = []
    for name in wanted:
        edits, checks = MUTANTS[name]
        with tempfile.TemporaryDirectory(prefix="lesson-mutant-") as folder:
            lessons = make_copy(edits, Path(folder))
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 *[f"tests/lessons/{check}" for check in checks]],
                cwd=ROOT, env={**os.environ, "LESSONS_DIR": str(lessons), "COLUMNS": "400"},
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        seconds = time.monotonic() - began
        lines = result.stdout.strip().splitlines()
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        if result.returncode == 1 and failed:
            print(f"red   ({seconds:4.1f} s)  {name}")
            for line in failed:
                print(f"        {line[:300]}")
        else:
            survivors.append(name)
            print(f"GREEN ({seconds:4.1f} s)  {name}: the checks did not notice (exit "
                  f"{result.returncode})\n" + "\n".join(lines[-5:]))  # fmt: skip
    print(f"\n{len(wanted) - len(survivors)} of {len(wanted)} mutants made the lesson checks fail.")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Prove that each lesson check goes red when its lesson breaks.

    python tests/lessons/mutants.py                  # every mutant, on the broker found first
    python tests/lessons/mutants.py ack              # the mutants whose name contains "ack"
    python tests/lessons/mutants.py --rabbitmq 4     # on RabbitMQ 4.x with the 4.3 defaults

Each mutant is a copy of connectors/ with one deliberate mistake (often one the chapter itself
made). The lesson checks named for it run on that copy (``LESSONS_DIR``) and must fail; the
script exits 1 if any mutant survives. It is an author's tool, not part of ``make test``.
``--rabbitmq 4`` is passed on to pytest. A few mistakes cannot happen on a broker that refuses
transient queues (an old transient queue left on it); those mutants run on 3.x only.
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

RESTART = (
    "test_ack.py::test_after_a_broker_restart_only_persistent_messages_in_a_durable_queue_are_left"
)
SHARED = "test_logs.py::test_the_chapters_shared_queue_splits_messages_between_loggers"

# name: (edits as (file under connectors/rabbit, old text, new text), checks that must fail).
# Every occurrence of the old text is replaced; it must occur at least once.
MUTANTS: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "intro: sender does not declare the queue (messages to a missing queue are dropped)": (
        [("intro/sender.py", 'await channel.declare_queue("hello", durable=True)', "pass")],
        ["test_intro.py::test_messages_sent_while_no_receiver_runs_wait_for_one"],
    ),
    "intro: `hello` transient again, as before RabbitMQ 4.3 (declare_queue('hello'))": (
        [
            (f"intro/{name}.py", '"hello", durable=True)', '"hello")')
            for name in ("sender", "receiver", "intro")
        ],
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
    "ack: the work queue `ack` transient (sender and receiver)": (
        [(f"ack/{name}.py", '"ack", durable=True)', '"ack")') for name in ("sender", "receiver")],
        ["test_ack.py::test_the_sender_puts_persistent_messages_in_a_durable_queue"],
    ),
    "ack: the sender publishes transient messages": (
        [("ack/sender.py", ", delivery_mode=DeliveryMode.PERSISTENT)", ")")],
        ["test_ack.py::test_the_sender_puts_persistent_messages_in_a_durable_queue"],
    ),
    "ack durability: the 'not persistent' message is persistent after all": (
        [("ack/durability.py", "DeliveryMode.NOT_PERSISTENT)", "DeliveryMode.PERSISTENT)")],
        [RESTART],
    ),
    "ack durability: the queue `durable` declared transient": (
        [("ack/durability.py", '"durable", durable=True)', '"durable", durable=False)')],
        [RESTART],
    ),
    "ack durability: check declares the queues without passive=True (and so makes them)": (
        [("ack/durability.py", "(name, passive=True)", "(name, durable=QUEUES[name])")],
        [RESTART],
    ),
    "ack durability: check acks what it looks at (and so takes the messages away)": (
        [("ack/durability.py", "queue.get(fail=False)", "queue.get(fail=False, no_ack=True)")],
        [RESTART],
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
    "qos: the sender publishes transient messages": (
        [("qos/sender.py", ", delivery_mode=DeliveryMode.PERSISTENT)", ")")],
        ["test_qos.py::test_the_sender_puts_persistent_messages_in_the_durable_queue_ack"],
    ),
    "qos: the receiver declares `ack` transient (406 against the durable one)": (
        [("qos/receiver.py", '"ack", durable=True)', '"ack")')],
        ["test_qos.py::test_a_busy_receiver_does_not_hoard_messages"],
    ),
    "logs: the shared queue `logger` transient, as before RabbitMQ 4.3": (
        [
            (f"logs/{name}.py", "durable=True, auto_delete=True)", "auto_delete=True)")
            for name in ("to_stdout", "to_file")
        ],
        [SHARED],
    ),
    "logs: the shared queue `logger` outlives its loggers (no auto_delete)": (
        [
            (f"logs/{name}.py", "durable=True, auto_delete=True)", "durable=True)")
            for name in ("to_stdout", "to_file")
        ],
        [SHARED],
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
    "every lesson: a refusal where main() awaits it ends in a traceback": (
        [
            (
                "lesson.py",
                "raise SystemExit(_lost[0] if _lost else refusal(error)) from None",
                "raise",
            )
        ],
        [
            "test_running.py::test_a_broker_refusal_ends_a_script_with_one_sentence[publish]",
            "test_intro.py::test_a_hello_of_another_shape_gets_one_plain_sentence",
        ],
    ),
    "every lesson: a refusal inside a consumer callback goes unnoticed (it waits forever)": (
        [("lesson.py", "self.channel.close_callbacks.add(_on_channel_close)", "pass")],
        ["test_running.py::test_a_broker_refusal_ends_a_script_with_one_sentence[callback]"],
    ),
    "every lesson: a refusal inside a consumer callback is logged with its traceback": (
        [("lesson.py", "not (record.exc_info and _refused(record.exc_info[1]))", "True")],
        ["test_running.py::test_a_broker_refusal_ends_a_script_with_one_sentence[callback]"],
    ),
    "every lesson: the event loop reports a refused callback with its traceback": (
        [("lesson.py", "loop.set_exception_handler(_unless_refused)", "pass")],
        ["test_running.py::test_a_broker_refusal_ends_a_script_with_one_sentence[callback]"],
    ),
    "every lesson: an old transient `hello` gets no advice on deleting it": (
        [("lesson.py", "    if leftover:", "    if False:")],
        ["test_intro.py::test_a_hello_of_another_shape_gets_one_plain_sentence"],
    ),
    "every lesson: a refused login gets the no-broker help, not one sentence": (
        [
            (
                "lesson.py",
                "except aio_pika.exceptions.ProbableAuthenticationError as",
                "except aio_pika.exceptions.QueueEmpty as",
            )
        ],
        ["test_running.py::test_a_refused_login_or_vhost_gets_one_sentence[password]"],
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
    "topics: a direct exchange instead of topic (patterns matched literally)": (
        [
            (f"topics/{n}.py", "ExchangeType.TOPIC)", "ExchangeType.DIRECT)")
            for n in ("sender", "receiver")
        ],
        ["test_topics.py::test_patterns_route_by_words"],
    ),
    "topics: receiver binds only its first pattern": (
        [
            (
                "topics/receiver.py",
                "for pattern in args.patterns:",
                "for pattern in args.patterns[:1]:",
            )
        ],
        ["test_topics.py::test_a_message_matching_two_bindings_of_one_queue_arrives_once"],
    ),
    "topics: a queue per pattern (a message matching two patterns arrives twice)": (
        [
            (
                "topics/receiver.py",
                "        for pattern in args.patterns:\n"
                "            await queue.bind(logs, routing_key=pattern)\n"
                "        await queue.consume(on_message)\n",
                "        for pattern in args.patterns:\n"
                "            queue = await channel.declare_queue(exclusive=True)\n"
                "            await queue.bind(logs, routing_key=pattern)\n"
                "            await queue.consume(on_message)\n",
            )
        ],
        ["test_topics.py::test_a_message_matching_two_bindings_of_one_queue_arrives_once"],
    ),
    "topics: sender ignores --mandatory": (
        [("topics/sender.py", "mandatory=args.mandatory)", "mandatory=False)")],
        ["test_topics.py::test_an_unmatched_key_is_dropped_and_mandatory_returns_it"],
    ),
    "rpc: server does not copy the correlation_id": (
        [("rpc/server.py", "correlation_id=message.correlation_id)", "correlation_id=None)")],
        ["test_rpc.py::test_a_call_gets_its_answer_through_reply_to_and_correlation_id"],
    ),
    "rpc: client waits without a timeout": (
        [
            (
                "rpc/client.py",
                "await asyncio.wait_for(waiting[correlation_id], args.timeout)",
                "await waiting[correlation_id]",
            )
        ],
        ["test_rpc.py::test_with_no_server_the_client_times_out_and_the_request_expires"],
    ),
    "rpc: requests never expire": (
        [
            (
                "rpc/client.py",
                "                expiration=args.timeout,  # not taken by a server in time: the br"
                "oker drops it\n",
                "",
            )
        ],
        ["test_rpc.py::test_with_no_server_the_client_times_out_and_the_request_expires"],
    ),
    "rpc: client looks replies up with [] (KeyError on a stray, the tutorial's way)": (
        [
            (
                "rpc/client.py",
                'call = waiting.pop(message.correlation_id or "", None)',
                "call = waiting.pop(message.correlation_id)",
            )
        ],
        ["test_rpc.py::test_a_reply_with_an_unknown_correlation_id_is_ignored"],
    ),
    "rpc: client keeps a timed-out call's future (a late reply hits a cancelled one)": (
        [
            (
                "rpc/client.py",
                "                del waiting[correlation_id]  # a reply that comes later is ignore"
                "d\n",
                "",
            )
        ],
        ["test_rpc.py::test_an_answer_after_the_client_gave_up_is_ignored_and_nothing_breaks"],
    ),
    "rpc: --direct ignored (always a reply queue)": (
        [("rpc/client.py", "        if args.direct:", "        if False:")],
        ["test_rpc.py::test_direct_reply_to_needs_no_reply_queue"],
    ),
    "rpc: no prefetch limit (a busy server takes every waiting request)": (
        [
            (
                "rpc/server.py",
                "        await channel.set_qos(prefetch_count=1)  # one request at a time; the res"
                "t wait for others\n",
                "",
            )
        ],
        ["test_rpc.py::test_a_busy_server_leaves_waiting_requests_to_another"],
    ),
    "confirms: batch way drops the last batch": (
        [
            (
                "confirms/publish.py",
                "for start in range(0, args.count, args.batch):",
                "for start in range(0, args.count - args.batch, args.batch):",
            )
        ],
        ["test_confirms.py::test_each_way_publishes_every_message[batch]"],
    ),
    "confirms: the full queue drops its head instead of refusing (no nack)": (
        [("confirms/outcomes.py", ', "x-overflow": "reject-publish"', "")],
        ["test_confirms.py::test_ack_nack_dropped_and_returned_look_apart"],
    ),
    "confirms: outcomes publishes the last message without mandatory": (
        [("confirms/outcomes.py", '"?", mandatory=True)', '"?", mandatory=False)')],
        ["test_confirms.py::test_ack_nack_dropped_and_returned_look_apart"],
    ),
    "cluster: a classic queue instead of a quorum queue (one node holds it)": (
        [
            (
                f"cluster/{name}.py",
                'else ("tasks", {"x-queue-type": "quorum"})',
                'else ("tasks", {})',
            )
            for name in ("worker", "publisher")
        ],
        ["test_cluster.py::test_the_ledger_loses_nothing_when_the_leaders_node_dies"],
    ),
    "cluster: the publisher has no confirms": (
        [
            (
                "cluster/publisher.py",
                "await connection.channel()  # publisher confirms are on by default",
                "await connection.channel(publisher_confirms=False)",
            ),
            (
                "cluster/publisher.py",
                "channel = await connection.channel()\n",
                "channel = await connection.channel(publisher_confirms=False)\n",
            ),
        ],
        ["test_cluster.py::test_confirmed_means_the_broker_has_it"],
    ),
    "cluster: the worker acks before the work": (
        [
            (
                "cluster/worker.py",
                "    await asyncio.sleep(args.work)  # stands for real work\n",
                "    await message.ack()\n"
                "    await asyncio.sleep(args.work)  # stands for real work\n",
            ),
            (
                "cluster/worker.py",
                "    try:\n        await message.ack()\n",
                "    try:\n        pass\n",
            ),
        ],
        ["test_cluster.py::test_the_ledger_loses_nothing_when_the_leaders_node_dies"],
    ),
    "cluster: tasks not persistent": (
        [("cluster/publisher.py", "delivery_mode=DeliveryMode.PERSISTENT)", ")")],
        ["test_cluster.py::test_on_one_node_a_durable_queue_keeps_confirmed_tasks_across_a_crash"],
    ),
    "cluster: the client only ever tries node 1": (
        [("cluster/nodes.py", "node = (first + tried) % len(NODES)", "node = 0")],
        ["test_cluster.py::test_the_scripts_try_the_nodes_in_turn"],
    ),
    "cluster: the poison queue has no x-delivery-limit": (
        [("cluster/poison.py", 'arguments["x-delivery-limit"] = args.limit', "pass")],
        ["test_cluster.py::test_a_poison_message_is_dead_lettered_after_the_delivery_limit"],
    ),
}


def make_copy(edits: list[tuple[str, str, str]], into: Path) -> Path:
    shutil.copytree(ROOT / "connectors", into / "connectors", ignore=shutil.ignore_patterns(
        "__pycache__", "task"))  # fmt: skip
    lessons = into / "connectors" / "rabbit"
    for file, old, new in edits:
        path = lessons / file
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"mutant out of date: {old!r} is not in {file}")
        path.write_text(text.replace(old, new))
    return lessons


# Mistakes that need a transient queue left on the broker: none can exist on RabbitMQ 4.3.
ONLY_ON_3 = {"every lesson: an old transient `hello` gets no advice on deleting it"}


def main(argv: list[str]) -> int:
    broker = []
    if "--rabbitmq" in argv:
        at = argv.index("--rabbitmq")
        broker, argv = argv[at : at + 2], argv[:at] + argv[at + 2 :]
    wanted = [name for name in MUTANTS if not argv or any(word in name for word in argv)]
    if broker:
        skipped = [name for name in wanted if name in ONLY_ON_3]
        wanted = [name for name in wanted if name not in ONLY_ON_3]
        for name in skipped:
            print(f"skip  (RabbitMQ 3.x only)  {name}")
    began_all = time.monotonic()
    survivors = []
    for name in wanted:
        edits, checks = MUTANTS[name]
        with tempfile.TemporaryDirectory(prefix="lesson-mutant-") as folder:
            lessons = make_copy(edits, Path(folder))
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *broker,
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
    print(f"\n{len(wanted) - len(survivors)} of {len(wanted)} mutants made the lesson checks fail "
          f"({time.monotonic() - began_all:.0f} s).")  # fmt: skip
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

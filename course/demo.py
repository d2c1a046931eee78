"""`make demo`: a narrated tour of the course on a real broker, in under two minutes.

It finds or starts a broker (as the tests do), makes a private vhost when the broker allows it
(so the lessons' fixed queue names cannot meet your own experiments), then runs each lesson's
key experiment with the lesson scripts themselves, and both tasks with the plain run_*.py
scripts: on the reference solutions by default, or on your code with ``IMPL=task``.

Every line a script prints is shown with its name and the time since the step began, followed
by what to notice. Whatever the demo starts, it stops: scripts, vhost, and the broker if it
started one. Without a private vhost it deletes, at the end, the queues and exchanges it created
in the broker's default vhost (those of its names that were not there before), when they are
unused and empty.

Task steps that are not written yet (a method of the task files that still raises a bare
``NotImplementedError``, as the stubs do) are no failure: the demo skips that task, and says in
one line at the end which steps are missing. Exit code 0 when every part went as the course
says or was skipped that way, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from course import broker as provisioning
from course import impl, vhost

ROOT = impl.ROOT
LESSONS = ROOT / "connectors" / "rabbit"
WORK = "0.6"  # seconds of pretend work per message (the lessons' default is 5)
WAIT = 15.0  # seconds to wait for any expected line before giving up on a step
JOB = r"""['"]type['"]: ['"]event['"]"""  # how run_worker.py prints a job

BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
    BOLD = DIM = GREEN = RED = RESET = ""


class StepFailed(Exception):
    pass


class NotWrittenYet(Exception):
    """A task part the student has not written yet: skipped, and named at the end."""


TASKS = {"rmq_worker.py": "Task 1", "rmq_logger.py": "Task 2", "rmq_rpc.py": "Task 3"}
TASK_OF_PART = {"worker": "Task 1", "logger": "Task 2", "rpc": "Task 3"}
LEFTOVERS = ("hello", "ack", "worker_metaclass")  # queues older versions made transient
# The names the tour's scripts declare. In a broker's default vhost (when no private vhost can
# be made) the tour deletes those it created, once it is over.
TOUR_QUEUES = ("hello", "ack", "logger", "rpc_queue", "worker_metaclass", "rpc_metaclass")
TOUR_EXCHANGES = ("logs", "logs_level", "topic_logs", "logger_metaclass")


async def tour_names_present(url: str) -> set[tuple[str, str]]:
    """("queue" or "exchange", name) for each of the tour's names that exists at ``url``."""
    import aio_pika

    found = set()
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        for kind, names in (("queue", TOUR_QUEUES), ("exchange", TOUR_EXCHANGES)):
            for name in names:
                channel = await connection.channel()
                try:  # passive: only asks whether it exists
                    if kind == "queue":
                        await channel.declare_queue(name, passive=True)
                    else:
                        await channel.declare_exchange(name, passive=True)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    continue
                found.add((kind, name))
                await channel.close()
    return found


def unwritten_steps(impl_dir: Path, file: str) -> list[str]:
    """The methods in ``impl_dir/file`` that still raise a bare ``NotImplementedError`` (the
    stubs' placeholder), as ``Worker.start (Step 2)``. A hook meant to be overridden raises it
    with a message (``Worker.handler``), and is not counted."""
    try:
        tree = ast.parse((impl_dir / file).read_text())
    except (OSError, SyntaxError):
        return []
    found = []
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if any(_bare_not_implemented(statement) for statement in method.body):
                doc = ast.get_docstring(method) or ""
                step = re.match(r"((?:Client )?[Ss]tep \d+)", doc)
                found.append(f"{cls.name}.{method.name}" + (f" ({step.group(1)})" if step else ""))
    return found


def _bare_not_implemented(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.Raise) or statement.exc is None:
        return False
    exc = statement.exc
    if isinstance(exc, ast.Call) and not exc.args and not exc.keywords:
        exc = exc.func
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


@dataclass
class Script:
    """A running script whose output lines are shown live and kept for checks."""

    name: str
    process: asyncio.subprocess.Process
    tour: Tour
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.lines.append(line)
                self.tour.show(self.name, line)

    async def wait_for(self, pattern: str, count: int = 1, timeout: float = WAIT) -> None:
        """Wait until ``count`` lines match ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while sum(1 for line in self.lines if regex.search(line)) < count:
            if self.process.returncode is not None and self.reader and self.reader.done():
                raise StepFailed(f"{self.name} exited (code {self.process.returncode})")
            if time.monotonic() > deadline:
                raise StepFailed(f"{self.name}: no line matching {pattern!r} in {timeout:g} s")
            await asyncio.sleep(0.05)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]

    async def finish(self, timeout: float = WAIT) -> int:
        """Wait for a script that ends by itself (a sender)."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            raise StepFailed(f"{self.name} did not finish in {timeout:g} s") from None
        if self.reader:
            await self.reader
        if self.process.returncode != 0:
            raise StepFailed(f"{self.name} failed (exit code {self.process.returncode})")
        return self.process.returncode

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self.reader:
            await self.reader
        return self.process.returncode or 0


class Tour:
    def __init__(self, url: str, impl_dir: Path, workdir: Path, shared: bool = False) -> None:
        self.url = url
        self.shared = shared  # the broker's default vhost: remove what the tour made, at the end
        self.impl_dir = impl_dir
        self.workdir = workdir
        self.running: list[Script] = []
        self.step_began = time.monotonic()
        self.problems: list[str] = []
        self.unwritten: dict[str, list[str]] = {}  # "Task 1": ["Worker.start (Step 2)", ...]

    # ------------------------------------------------------------------ narration

    def chapter(self, title: str, text: str) -> None:
        print(f"\n{BOLD}== {title}{RESET}\n{text}", flush=True)
        self.step_began = time.monotonic()

    def show(self, name: str, line: str) -> None:
        elapsed = time.monotonic() - self.step_began
        print(f"  {DIM}{elapsed:5.1f}s{RESET} {name:<12} | {line}", flush=True)

    def notice(self, text: str) -> None:
        print(f"  {GREEN}Notice:{RESET} {text}", flush=True)

    # ------------------------------------------------------------------ scripts

    async def start(self, name: str, script: str, *args: str, task: bool = False) -> Script:
        """Run a lesson script (``intro/sender.py``) or, with ``task``, a run_*.py script."""
        if task:  # the plain run_*.py script, with the task modules taken from impl_dir
            command = ["-m", "course.impl", str(self.impl_dir), str(ROOT / script), *args]
        else:
            command = [str(LESSONS / script), *args]
        env = {
            **os.environ,
            "RABBITMQ_URL": self.url,
            "LESSON_WORK_SECONDS": WORK,
            "WORK_SECONDS": WORK,
            "PYTHONUNBUFFERED": "1",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, cwd=self.workdir, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        running = Script(name, process, self)
        running.reader = asyncio.create_task(running.pump())
        self.running.append(running)
        return running

    async def send(self, name: str, script: str, *args: str, task: bool = False) -> None:
        await (await self.start(name, script, *args, task=task)).finish()

    async def stop_all(self) -> None:
        await asyncio.gather(*(script.stop() for script in self.running))
        self.running.clear()

    # ------------------------------------------------------------------ the tour

    async def intro(self) -> None:
        self.chapter(
            "1. intro: the broker keeps messages until someone takes them",
            "Two senders run while no receiver exists; then one receiver starts.",
        )
        await self.send("sender", "intro/sender.py", "first")
        await self.send("sender", "intro/sender.py", "second")
        first = await self.start("receiver-1", "intro/receiver.py")
        await first.wait_for("Received", count=4)
        self.notice("all 4 messages waited in the queue `hello` and arrived once a receiver ran.")

        self.chapter("   round robin", "A second receiver joins; four more messages are sent.")
        second = await self.start("receiver-2", "intro/receiver.py")
        await second.wait_for("Waiting for messages")
        await first.wait_for("Done with '1 - second'")
        await self.send("sender", "intro/sender.py", "third")
        await self.send("sender", "intro/sender.py", "fourth")
        await first.wait_for("Received '.* - (third|fourth)'", count=2)
        await second.wait_for("Received '.* - (third|fourth)'", count=2)
        self.notice("the receivers took turns: each got 2 of the 4 new messages (round robin).")
        await self.stop_all()

    async def ack(self) -> None:
        self.chapter(
            "2. ack: a receiver that dies mid-task does not lose its message",
            "receiver-1 takes a message and is killed (SIGKILL) while working on it.",
        )
        doomed = await self.start("receiver-1", "ack/receiver.py", "--work", "30")
        await doomed.wait_for("Waiting for messages")
        await self.send("sender", "ack/sender.py")
        await doomed.wait_for("Working")
        await doomed.stop(signal.SIGKILL)
        self.show("demo", "receiver-1 killed before it acknowledged the message")
        heir = await self.start("receiver-2", "ack/receiver.py")
        await heir.wait_for(r"redelivered: True")
        await heir.wait_for("acknowledged")
        self.notice("RabbitMQ gave the unacknowledged message to receiver-2, marked redelivered.")
        await self.stop_all()

    async def qos(self) -> None:
        self.chapter(
            "3. qos: prefetch_count limits how much one consumer takes at once",
            "Five messages wait; a receiver with --prefetch 2 works through them.",
        )
        for number in range(1, 6):
            await self.send("sender", "qos/sender.py", f"task {number}")
        receiver = await self.start("receiver", "qos/receiver.py", "--prefetch", "2")
        await receiver.wait_for("Done with", count=5)
        peak = max(int(m) for m in re.findall(r"running: (\d+)", " ".join(receiver.lines)))
        if peak != 2:
            raise StepFailed(f"expected at most and at least 2 running at once, saw {peak}")
        self.notice("never more than 2 handlers ran at once (running: 2 of 2), and 2 did.")
        await self.stop_all()

    async def logs(self) -> None:
        self.chapter(
            "4. logs: a fanout exchange copies each message to every bound queue",
            "Two loggers, each with its own exclusive queue, hear one sender.",
        )
        out = await self.start("to_stdout", "logs/to_stdout.py")
        file = await self.start("to_file", "logs/to_file.py")
        await out.wait_for("bound to exchange")
        await file.wait_for("bound to exchange")
        await self.send("sender", "logs/sender.py", "disk is full")
        await out.wait_for("disk is full")
        await file.wait_for("disk is full")
        self.notice("both loggers got the message: fan-out, one copy per queue.")
        await self.stop_all()

    async def logs_level(self) -> None:
        self.chapter(
            "5. logs_level: a direct exchange routes by the routing key",
            "to_stdout is bound to info and critical, to_file to critical only.",
        )
        logs_txt = self.workdir / "logs.txt"
        logs_txt.unlink(missing_ok=True)
        out = await self.start("to_stdout", "logs_level/to_stdout.py")
        file = await self.start("to_file", "logs_level/to_file.py")
        await out.wait_for("To exit press CTRL")
        await file.wait_for("To exit press CTRL")
        for level in ("info", "critical", "something"):
            await self.send("sender", "logs_level/sender.py", level, f"a {level} event")
        await out.wait_for("a critical event")
        await file.wait_for("a critical event")
        await self.settle([out, file])
        if out.matching("a something event") or file.matching("a (info|something) event"):
            raise StepFailed("a message reached a logger that is not bound to its key")
        self.notice("info reached stdout only, critical both, something nobody (no binding).")
        await self.stop_all()

    async def topics(self) -> None:
        self.chapter(
            "6. topics: a topic exchange routes by patterns over the words of the key",
            "One receiver is bound with *.critical, one with disk.#; four keys are sent.",
        )
        critical = await self.start("critical", "topics/receiver.py", "*.critical")
        disk = await self.start("disk", "topics/receiver.py", "disk.#")
        await critical.wait_for("To exit press CTRL")
        await disk.wait_for("To exit press CTRL")
        for key in ("disk.critical", "db.critical", "disk.sda.info", "db.info"):
            await self.send("sender", "topics/sender.py", key, f"about {key}")
        await critical.wait_for("about db.critical")
        await disk.wait_for("about disk.sda.info")
        await self.settle([critical, disk])
        if critical.matching("about (disk.sda.info|db.info)") or disk.matching(r"about db\."):
            raise StepFailed("a message reached a receiver whose pattern does not match its key")
        self.notice(
            "*.critical matched one word then critical; disk.# matched any number of words."
        )
        sender = await self.start("sender", "topics/sender.py", "nothing.here", "--mandatory")
        await sender.finish()
        if not sender.matching("Returned"):
            raise StepFailed("a mandatory message that matched nothing should come back")
        self.notice("a key no pattern matches is dropped; with mandatory=True the sender hears so.")
        await self.stop_all()

    async def until_ready(self, queue: str, count: int) -> None:
        """Wait until ``queue`` holds exactly ``count`` messages not yet handed to a consumer."""
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=10)
        async with connection:
            channel = await connection.channel()
            deadline = time.monotonic() + WAIT
            while True:
                declared = await channel.declare_queue(queue, passive=True)
                if declared.declaration_result.message_count == count:
                    return
                if time.monotonic() > deadline:
                    raise StepFailed(f"the queue {queue} never came down to {count} waiting")
                await asyncio.sleep(0.05)

    async def settle(self, scripts: list[Script], quiet: float = 0.5) -> None:
        """Wait until the scripts have printed nothing for ``quiet`` seconds (max WAIT)."""
        deadline = time.monotonic() + WAIT
        seen = -1
        while time.monotonic() < deadline:
            now = sum(len(s.lines) for s in scripts)
            if now == seen:
                return
            seen = now
            await asyncio.sleep(quiet)

    def skip_unwritten(self, file: str) -> None:
        """Skip this task part, saying so, when steps of ``file`` are not written yet."""
        missing = unwritten_steps(self.impl_dir, file)
        if missing:
            self.unwritten[TASKS[file]] = missing
            raise NotWrittenYet(f"not written yet: {', '.join(missing)}")

    async def worker(self) -> None:
        self.chapter(
            f"7. Task 1, the Worker ({self.impl_name()}): capacity and a graceful stop",
            "Five jobs are put in the queue worker_metaclass; run_worker.py has capacity=2.",
        )
        self.skip_unwritten("rmq_worker.py")
        for _ in range(5):
            await self.send("client", "run_worker_client.py", task=True)
        worker = await self.start("run_worker", "run_worker.py", task=True)
        await worker.wait_for(JOB, count=2)
        self.notice("jobs finish two at a time (see the times): capacity=2 runs 2 at once, not 5.")
        await self.until_ready("worker_metaclass", 1)  # jobs 3 and 4 have been handed over
        self.show("demo", "SIGTERM to run_worker while jobs 3 and 4 are running")
        await worker.stop(signal.SIGTERM)
        if len(worker.matching(JOB)) != 4 or not worker.matching("Stopped"):
            raise StepFailed("run_worker.py should finish its 2 running jobs, then stop cleanly")
        self.notice("the worker stopped taking jobs, let the 2 running ones finish, then closed.")
        heir = await self.start("run_worker-2", "run_worker.py", task=True)
        await heir.wait_for(JOB)
        self.notice("job 5 was never started, so it stayed in the queue for the next worker.")
        await self.stop_all()

    async def logger(self) -> None:
        self.chapter(
            f"8. Task 2, the Logger ({self.impl_name()}): an event bus with levels",
            "Two run_logger.py listen on the bus logger_metaclass; a client sends two events.",
        )
        self.skip_unwritten("rmq_logger.py")
        first = await self.start("logger-1", "run_logger.py", task=True)
        second = await self.start("logger-2", "run_logger.py", task=True)
        await first.wait_for("Waiting for events")
        await second.wait_for("Waiting for events")
        await self.send("client", "run_logger_client.py", "info", task=True)
        await self.send("client", "run_logger_client.py", "critical", task=True)
        for logger in (first, second):
            await logger.wait_for(r"\{'info': True\}")
            await logger.wait_for(r"\{'critical': True\}")
        self.notice("every running logger got every event; the routing key chose the handler.")
        await self.stop_all()

    async def rpc(self) -> None:
        self.chapter(
            f"9. Task 3, RPC ({self.impl_name()}): a typed call, and its error",
            "run_rpc_server.py serves int_sum; run_rpc_client.py calls it right, then wrong.",
        )
        self.skip_unwritten("rmq_rpc.py")
        server = await self.start("rpc_server", "run_rpc_server.py", task=True)
        await server.wait_for("Serving int_sum")
        client = await self.start("rpc_client", "run_rpc_client.py", task=True)
        await client.finish()
        if not client.matching(r"int_sum\(a=5, b=18\) = 23"):
            raise StepFailed("run_rpc_client.py should print int_sum(a=5, b=18) = 23")
        if not client.matching(r"failed on the server: TypeError: .*'b'"):
            raise StepFailed("int_sum(a=5, b='b') should come back as a TypeError naming b")
        if server.matching(r"int_sum\(a=5, b='b'\)"):
            raise StepFailed("the call with b='b' should never reach int_sum")
        self.notice("the client got 23, then the server's TypeError for b='b': int_sum never ran.")
        await self.stop_all()

    def impl_name(self) -> str:
        if self.impl_dir == impl.REFERENCE_DIR:
            return "the reference solution"
        if self.impl_dir == impl.STUDENT_DIR:
            return "your code in connectors/rabbit/task"
        return str(self.impl_dir)

    async def run(self) -> int:
        await self.remove_leftovers()
        before = await tour_names_present(self.url) if self.shared else None
        try:
            await self.parts()
        finally:
            if before is not None:
                await self.remove_own_names(before)
        return 1 if self.problems else 0

    async def parts(self) -> None:
        for part in (self.intro, self.ack, self.qos, self.logs, self.logs_level, self.topics,
                     self.worker, self.logger, self.rpc):  # fmt: skip
            try:
                await part()
            except NotWrittenYet as error:
                print(f"  {DIM}Skipped, {error}{RESET}", flush=True)
            except StepFailed as error:
                if any("is not written yet" in line for s in self.running for line in s.lines):
                    print(f"  {DIM}Skipped: the task is not written yet (see above).{RESET}")
                    self.unwritten.setdefault(TASK_OF_PART[part.__name__], [])
                    continue
                self.problems.append(f"{part.__name__}: {error}")
                print(f"  {RED}Step did not go as expected:{RESET} {error}", flush=True)
            finally:
                await self.stop_all()

    async def remove_own_names(self, before: set[tuple[str, str]]) -> None:
        """Delete the queues and exchanges the tour created in the broker's default vhost (its
        names that were not there before it), when nothing uses them and no message waits."""
        import aio_pika

        with contextlib.suppress(OSError, aio_pika.exceptions.AMQPError):
            made = sorted(await tour_names_present(self.url) - before)
            connection = await aio_pika.connect(self.url, timeout=10)
            async with connection:
                for kind, name in made:
                    channel = await connection.channel()
                    with contextlib.suppress(aio_pika.exceptions.AMQPError):
                        if kind == "queue":
                            await channel.queue_delete(name, if_unused=True, if_empty=True)
                        else:
                            await channel.exchange_delete(name, if_unused=True)
            if made:
                names = ", ".join(name for _, name in made)
                print(f"\nRemoved what the tour made in the default vhost: {names}.", flush=True)

    async def remove_leftovers(self) -> None:
        """Delete an empty, unused transient queue that an older version of the course left
        under a name the tour uses: the lessons now declare it durable, and RabbitMQ would
        refuse that (406). A queue that still holds messages is left alone; the lesson
        script then says how to delete it."""
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=10)
        async with connection:
            for name in LEFTOVERS:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    continue  # no such queue: nothing to do
                ready = queue.declaration_result.message_count
                consumers = queue.declaration_result.consumer_count
                channel = await connection.channel()
                try:  # the same declaration as the lessons': refused if it is transient
                    await channel.declare_queue(name, durable=True)
                except aio_pika.exceptions.ChannelPreconditionFailed:
                    if ready or consumers:
                        continue
                    channel = await connection.channel()
                    await channel.queue_delete(name, if_unused=True, if_empty=True)
                    self.show("demo", f"deleted the empty queue {name!r} an older version of "
                                      "the course made transient")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="make demo", description=__doc__)
    options.add_argument("--impl", default=None, help="task folder for the tasks (task = yours)")
    args = options.parse_args(argv)
    impl_dir = impl.resolve(args.impl) if args.impl else impl.REFERENCE_DIR
    if not impl_dir.exists():  # the student edition has no reference: use the student's code
        impl_dir = impl.STUDENT_DIR
    began = time.monotonic()
    try:
        found = provisioning.find_broker("tests", log=lambda line: print(line, flush=True))
    except provisioning.BrokerUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    print(found.describe(), flush=True)
    place = vhost.create(found.url, found.management_url, prefix="course-demo")
    print(f"Running in {place.describe()}.", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="course-demo-") as workdir:
            tour = Tour(place.url, impl_dir, Path(workdir), shared=not place.private)
            code = asyncio.run(tour.run())
    finally:
        place.delete()
        found.stop()
    print(f"\n{BOLD}Tour finished in {time.monotonic() - began:.0f} s.{RESET}")
    if code:
        print("Some steps did not go as the course says (see above).")
    if tour.unwritten:
        steps = "; ".join(f"{task}: {', '.join(missing) or 'see above'}"
                          for task, missing in tour.unwritten.items())  # fmt: skip
        print(f"Not written yet, so the tour skipped them: {steps}. The steps are in "
              "connectors/rabbit/task/README.md; run `make demo` again once they are.")  # fmt: skip
    if found.management_url and not found.owned:
        print(f"Management UI: {found.management_url} (login guest / guest)")
    else:
        print("Management UI: start a broker that stays up with `make broker`; it prints the")
        print("UI's address (http://localhost:15672 when ports are free; login guest / guest).")
    return code


if __name__ == "__main__":
    sys.exit(main())

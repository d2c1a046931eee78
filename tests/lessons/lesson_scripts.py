"""A lesson script running as a subprocess, as a student runs it: what it prints, line by line
(stdout with the time each line came), and waits on that output with a deadline. Shared by the
lesson checks (``conftest.py``) and the cluster lesson's checks."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from course.checks import eventually

WAIT = 10.0  # seconds: how long any one expected line may take to show up


class Script:
    """One lesson script running as a subprocess; its output is collected line by line."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []  # stdout, each line with when it came
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, timed: bool) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            if timed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
            else:
                self.err.append(line.rstrip("\n"))

    @property
    def out(self) -> list[str]:
        return [line for _, line in list(self.lines)]

    @property
    def name(self) -> str:
        """``qos/receiver.py --prefetch 3``: the lesson script and its arguments."""
        script = Path(self.command[1])
        return " ".join([f"{script.parent.name}/{script.name}", *self.command[2:]])

    def one_line_error(self) -> str:
        """What it printed on stderr, which must be one line and no traceback (a failure if not)."""
        assert len(self.err) == 1 and "Traceback" not in self.err[0], (
            f"{self.name} should explain the broker's refusal in one line on stderr" + self.report()
        )
        return self.err[0]

    def report(self, last: int | None = None) -> str:
        """What it printed (its ``last`` lines of each, if given), for failure messages."""
        out, err = self.out, self.err
        shown = [f"    ... ({len(out) - last} lines before)"] if last and len(out) > last else []
        shown += ["    " + line for line in out[-last if last else 0 :]] or ["    (nothing)"]
        errs = ["    " + line for line in err[-last if last else 0 :]] or ["    (nothing)"]
        state = "running" if self.process.poll() is None else f"exit {self.process.returncode}"
        return "\n".join([f"\n--- {self.name} ({state}) stdout:", *shown, "--- stderr:", *errs])

    def count(self, text: str) -> int:
        return sum(text in line for line in self.out)

    def received(self, verb: str = "Received") -> list[str]:
        """The message bodies from lines like `` [x] Received 'body' ...``."""
        pattern = re.compile(rf"\[x\] {verb} '([^']*)'")
        return [m.group(1) for line in self.out if (m := pattern.search(line))]

    async def wait_for(
        self, text: str, times: int = 1, timeout: float = WAIT, why: str = ""
    ) -> None:
        """Wait until ``text`` is in ``times`` lines of its output; ``why`` explains a failure.
        A script that exits without printing it fails the wait at once."""

        def message() -> str:
            ended = "" if self.process.poll() is None else " (it exited without it)"
            return (
                (f"{why}\n" if why else "")
                + f"{self.name}: expected {text!r} (x{times}) within {timeout:g} s{ended}"
                + self.report()
            )

        await eventually(
            lambda: self.count(text) >= times or self.process.poll() is not None,
            timeout=timeout,
            message=message,
        )
        if self.count(text) < times:  # it exited: read the last of its output, then decide
            for reader in self._readers:
                reader.join(timeout=2)
            if self.count(text) < times:
                pytest.fail(message(), pytrace=False)

    async def finished(self, timeout: float = WAIT) -> int:
        await eventually(
            lambda: self.process.poll() is not None,
            timeout=timeout,
            message=lambda: f"{self.name} did not exit within {timeout:g} s" + self.report(),
        )
        for reader in self._readers:
            reader.join(timeout=2)
        return self.process.returncode

    async def stop_cleanly(self, how: int = signal.SIGINT, timeout: float = 5.0) -> None:
        """Ctrl+C (SIGINT) or SIGTERM ends the script promptly: exit code 0, no traceback."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        code = await self.finished(timeout=timeout)
        name = signal.Signals(how).name
        assert code == 0, f"{self.name} exited with {code} after {name}" + self.report()
        assert not any("Traceback" in line for line in self.err), (
            f"{self.name} printed a traceback after {name}" + self.report()
        )

    def stop(self) -> None:
        """SIGKILL if still running, and collect it (used at teardown, pass or fail)."""
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=2)

"""Catalogues of typical wrong solutions, and the machinery proving the graded suites reject them.

A catalogue is a module (``course.mistakes.worker``, ``course.mistakes.logger``) with:

* ``MODULE``: the task module it targets, e.g. ``"rmq_worker"``;
* ``SUITE``: the graded suite that must reject every entry, relative to the repo root;
* ``BASES``: ``{name: path}`` of correct solutions the mistakes are made from (the reference
  and/or a plain, student-style correct solution kept next to the catalogue);
* ``MISTAKES``: a list of :class:`Mistake`.

A mistake is a small edit of a correct solution: text replacements applied to its source. Each
says which failure message proves it was caught (``expect``, a regular expression searched in the
messages of the failed tests), so a mistake rejected "by accident" (say, a crash elsewhere) does
not count.

``run(mistake, catalogue)`` writes the edited file to a temp folder and runs the graded suite on
it with ``--impl <folder> --stretch``, in a subprocess, exactly as a student's code would be run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = ("course.mistakes.worker", "course.mistakes.logger", "course.mistakes.rpc")


@dataclass(frozen=True)
class Mistake:
    id: str
    summary: str  # what the student did, in one line
    edits: tuple[tuple[str, str], ...]  # (old, new): each `old` must occur exactly once
    expect: str  # regex that a failed test's message must match
    base: str = "reference"
    extra_args: tuple[str, ...] = field(default=())


@dataclass
class Outcome:
    mistake: Mistake
    exit_code: int
    failures: dict[str, str]  # test name -> failure message
    output: str
    score: float = 0
    max_score: float = 0

    @property
    def caught(self) -> bool:
        pattern = re.compile(self.mistake.expect, re.IGNORECASE | re.DOTALL)
        return self.exit_code == 1 and any(pattern.search(m) for m in self.failures.values())

    def explain(self) -> str:
        shown = "\n".join(f"  {name}: {message[:300]}" for name, message in self.failures.items())
        return (
            f"mistake {self.mistake.id!r} ({self.mistake.summary}): exit code {self.exit_code}; "
            f"expected a failure matching {self.mistake.expect!r}; failures:\n{shown or '  none'}"
            f"\n--- output tail ---\n{self.output[-3000:]}"
        )


def load_catalogue(name: str) -> ModuleType:
    return importlib.import_module(name)


def apply(source: str, mistake: Mistake) -> str:
    for old, new in mistake.edits:
        count = source.count(old)
        if count != 1:
            raise ValueError(
                f"mistake {mistake.id!r}: expected exactly one occurrence of {old!r} in the base "
                f"{mistake.base!r}, found {count}. Update the catalogue with the solution."
            )
        source = source.replace(old, new)
    return source


def materialize(mistake: Mistake, catalogue: ModuleType, directory: Path) -> Path:
    """Write the wrong solution as ``directory/<MODULE>.py`` and return the directory."""
    base = Path(catalogue.BASES[mistake.base])
    text = apply(base.read_text(), mistake)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{catalogue.MODULE}.py").write_text(text)
    return directory


async def run(
    mistake: Mistake, catalogue: ModuleType, url: str | None = None, timeout: float = 240
) -> Outcome:
    """Run the graded suite (with --stretch) on one wrong solution and collect its failures.

    ``url`` is the broker to use (passed on as ``RABBITMQ_URL``); default: find one as usual.
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if url:
        env["RABBITMQ_URL"] = url
    with tempfile.TemporaryDirectory(prefix=f"mistake-{mistake.id}-") as tmp:
        impl_dir = materialize(mistake, catalogue, Path(tmp) / "impl")
        report = Path(tmp) / "junit.xml"
        results = Path(tmp) / "results.json"
        command = [
            sys.executable, "-m", "pytest", str(ROOT / catalogue.SUITE),
            "--impl", str(impl_dir), "--stretch", "-q", "-p", "no:cacheprovider",
            "-o", "addopts=", f"--junitxml={report}", "--results-json", str(results),
            *mistake.extra_args,
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            out, _ = await process.communicate()
            return Outcome(mistake, -1, {}, out.decode(errors="replace") + "\n(timed out)")
        failures = _failures(report) if report.exists() else {}
        scored = json.loads(results.read_text()) if results.exists() else {}
        return Outcome(
            mistake,
            process.returncode or 0,
            failures,
            out.decode(errors="replace"),
            scored.get("score", 0),
            scored.get("max_score", 0),
        )


def _failures(report: Path) -> dict[str, str]:
    failures = {}
    for case in ElementTree.parse(report).iter("testcase"):
        for problem in (*case.iter("failure"), *case.iter("error")):
            text = f"{problem.get('message', '')}\n{problem.text or ''}"
            failures[case.get("name", "?")] = text
    return failures


async def run_all(
    pairs: list[tuple[Mistake, ModuleType]], url: str | None = None, parallel: int = 4
) -> dict[str, Outcome]:
    """Run many mistakes, a few at a time (the suites mostly wait on the broker)."""
    gate = asyncio.Semaphore(parallel)

    async def one(mistake: Mistake, catalogue: ModuleType) -> Outcome:
        async with gate:
            return await run(mistake, catalogue, url)

    outcomes = await asyncio.gather(*(one(m, c) for m, c in pairs))
    return {f"{c.MODULE}:{o.mistake.id}": o for (_, c), o in zip(pairs, outcomes, strict=True)}

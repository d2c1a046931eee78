"""Export the student edition: ``python -m course.export OUT``.

What a student receives: the lessons, the task stubs and text, the run scripts, the graded
suites and the tooling they need to run them (broker provisioning, the pytest plugin, the
proxy). Left out: reference solutions, mistake catalogues, author-only tooling and tests, CI and
benchmarks. Blocks of text between ``>>> author-only`` and ``<<< author-only`` marker lines
(in the Makefile and README) are cut out too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from course.impl import ROOT

EXCLUDED = (
    "solutions/",
    "course/mistakes/",
    "course/grade.py",
    "course/export.py",
    "tests/course/",
    "tests/reference/",
    "tests/lessons/",
    "benchmarks/",
    ".ci/",
)
MARK_START, MARK_END = ">>> author-only", "<<< author-only"


def tracked_files(root: Path) -> list[str]:
    """The project's files: git's list when it is a checkout, else a walk without caches."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        files = [name for name in listed.split("\0") if name]
        return [name for name in files if (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".broker"}
        return [
            str(path.relative_to(root))
            for path in root.rglob("*")
            if path.is_file() and not skip & set(path.relative_to(root).parts)
        ]


def strip_author_blocks(text: str) -> str:
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if MARK_START in line:
            inside = True
        elif MARK_END in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "".join(kept)


def export(out: Path, root: Path = ROOT) -> list[str]:
    """Write the student edition into ``out`` (which must not exist or be empty)."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose a new folder.")
    written = []
    for name in sorted(tracked_files(root)):
        if name.startswith(EXCLUDED):
            continue
        source, target = root / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in ("Makefile", "README.md"):
            target.write_text(strip_author_blocks(source.read_text()))
        else:
            shutil.copy2(source, target)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m course.export OUT", file=sys.stderr)
        return 2
    out = Path(args[0]).resolve()
    written = export(out)
    print(f"Student edition: {len(written)} files in {out}")
    print(f"Next: cd {out} && make test   (red until the tasks are done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

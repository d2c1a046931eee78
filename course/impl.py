"""Which implementation of the task modules is under test.

The graded suites import ``connectors.rabbit.task.rmq_worker``, ``...rmq_logger`` and
``...rmq_rpc``. By default those are the student's files in ``connectors/rabbit/task``.
``use(DIR)`` points these names at ``DIR/rmq_worker.py`` and so on instead, for the whole
process; that is what
``pytest --impl DIR`` does. ``load(DIR, name)`` imports one file without touching those names
(the demo and the benchmarks use it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "connectors.rabbit.task"
MODULES = ("rmq_worker", "rmq_logger", "rmq_rpc")
STUDENT_DIR = ROOT / "connectors" / "rabbit" / "task"
REFERENCE_DIR = ROOT / "solutions" / "connectors" / "rabbit" / "task"
ALIASES = {"solutions": REFERENCE_DIR, "reference": REFERENCE_DIR, "task": STUDENT_DIR}


class ImplNotFound(ValueError):
    pass


def resolve(value: str | Path | None) -> Path:
    """Turn an ``--impl`` value into the directory that holds ``rmq_worker.py``/``rmq_logger.py``.

    Accepts the aliases ``solutions`` (the reference) and ``task`` (the student files), a task
    folder, or the root of a checkout of this course (its ``connectors/rabbit/task`` is used).
    """
    if value is None or value == "":
        return STUDENT_DIR
    if str(value) in ALIASES and not Path(value).joinpath("rmq_worker.py").exists():
        return ALIASES[str(value)]
    path = Path(value).expanduser().resolve()
    for candidate in (path, path / "connectors" / "rabbit" / "task"):
        if any((candidate / f"{name}.py").is_file() for name in MODULES):
            return candidate
    raise ImplNotFound(
        f"--impl {value}: no task module ({', '.join(f'{m}.py' for m in MODULES)}) in {path} "
        f"or in {path / 'connectors' / 'rabbit' / 'task'}"
    )


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in MODULES:
            return None
        file = self.directory / f"{name}.py"
        if not file.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, file)


_active: _Finder | None = None


def use(directory: Path) -> None:
    """From now on, import the task modules from ``directory``."""
    global _active
    if _active is not None:
        sys.meta_path.remove(_active)
    _active = _Finder(directory)
    sys.meta_path.insert(0, _active)
    for name in MODULES:
        sys.modules.pop(f"{PACKAGE}.{name}", None)


def current() -> Path:
    return _active.directory if _active is not None else STUDENT_DIR


def load(directory: str | Path, name: str) -> ModuleType:
    """Import ``directory/name.py`` under a private module name and return it."""
    file = resolve(directory) / f"{name}.py"
    module_name = f"_course_impl_{abs(hash(str(file)))}_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImplNotFound(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses need the module registered while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def main(argv: list[str]) -> None:
    """``python -m course.impl DIR SCRIPT [ARGS...]``: run SCRIPT with the task modules from DIR.

    The demo uses this to run the plain run_*.py scripts on the reference (or any folder)
    without changing a line of them.
    """
    import runpy

    if len(argv) < 2:
        raise SystemExit("usage: python -m course.impl DIR SCRIPT [ARGS...]")
    use(resolve(argv[0]))
    sys.argv = argv[1:]
    sys.path.insert(0, str(Path(argv[1]).resolve().parent))
    runpy.run_path(argv[1], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

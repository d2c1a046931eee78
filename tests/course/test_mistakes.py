"""Course integrity: the graded suites reject every typical wrong solution, and pass the right ones.

Each catalogue entry is run through its graded suite (``--stretch``) in a subprocess, a few at a
time; the outcome must be a failed run whose failure messages name that mistake.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

import pytest

from course import mistakes, vhost
from course.mistakes import Mistake

# One worker runs the whole catalogue (its own subprocesses, a few at a time): the `outcomes`
# fixture runs every selected entry, so a second worker would run them all again.
# Each catalogue runs in one xdist worker, its entries a few at a time in subprocesses of their
# own; two workers run two catalogues at once. (Without the groups, every worker that got one
# entry of a catalogue would run the whole catalogue again.)
pytestmark = pytest.mark.timeout(900)
PARALLEL = 3  # subprocesses per catalogue; most of their time is spent waiting on the broker


def _catalogue_params() -> list:
    params = []
    for name in mistakes.CATALOGUES:
        try:
            catalogue = importlib.import_module(name)
        except ModuleNotFoundError:
            params.append(pytest.param(name, None, id=f"{name}:missing"))
            continue
        group = pytest.mark.xdist_group(f"mistakes-{catalogue.MODULE}")
        for base in catalogue.BASES:
            correct = Mistake(f"base-{base}", f"the correct {base} solution", (), "", base=base)
            params.append(
                pytest.param(name, correct, id=f"{catalogue.MODULE}:base-{base}", marks=group)
            )
        for entry in catalogue.MISTAKES:
            params.append(
                pytest.param(name, entry, id=f"{catalogue.MODULE}:{entry.id}", marks=group)
            )
    return params


PARAMS = _catalogue_params()


@pytest.fixture(scope="session")
def outcomes_of(
    request: pytest.FixtureRequest, broker
) -> Callable[[str], dict[str, mistakes.Outcome]]:
    """The outcomes of a catalogue's selected entries, all run, concurrently, when the first of
    them is needed."""
    done: dict[str, dict[str, mistakes.Outcome]] = {}

    def outcomes(name: str) -> dict[str, mistakes.Outcome]:
        if name in done:
            return done[name]
        catalogue = importlib.import_module(name)
        wanted = []
        for item in request.session.items:
            callspec = getattr(item, "callspec", None)
            if callspec is None or item.originalname != "test_graded_suite_verdict":
                continue
            entry = callspec.params["entry"]
            if callspec.params["catalogue"] == name and entry is not None:
                wanted.append((entry, catalogue))
        # A vhost of their own: what wrong solutions leave behind goes with it.
        place = vhost.create(broker.url, broker.management_url, prefix="course-mistakes")
        try:
            done[name] = asyncio.run(mistakes.run_all(wanted, place.url, parallel=PARALLEL))
        finally:
            place.delete()
        return done[name]

    return outcomes


@pytest.mark.parametrize(("catalogue", "entry"), PARAMS)
def test_graded_suite_verdict(catalogue: str, entry: Mistake | None, outcomes_of) -> None:
    assert entry is not None, f"the mistake catalogue {catalogue} does not exist yet"
    module = importlib.import_module(catalogue)
    outcome = outcomes_of(catalogue)[f"{module.MODULE}:{entry.id}"]
    if not entry.edits:
        assert outcome.exit_code == 0, f"a correct solution fails the suite:\n{outcome.explain()}"
        assert outcome.score == outcome.max_score > 0, "a correct solution must get full marks"
    else:
        assert outcome.caught, outcome.explain()


def test_catalogues_are_big_enough_and_cover_the_required_areas() -> None:
    sizes = {"course.mistakes.worker": 12, "course.mistakes.logger": 10, "course.mistakes.rpc": 12}
    for name, minimum in sizes.items():
        catalogue = importlib.import_module(name)
        ids = [entry.id for entry in catalogue.MISTAKES]
        assert len(ids) >= minimum, f"{name} has {len(ids)} mistakes, needs {minimum}"
        assert len(set(ids)) == len(ids), f"{name} has duplicate ids"
        assert "reference" in catalogue.BASES, "the reference must be proven to pass, with stretch"
        for entry in catalogue.MISTAKES:
            mistakes.apply(catalogue.BASES[entry.base].read_text(), entry)  # edits still apply

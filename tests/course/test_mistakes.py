"""Course integrity: the graded suites reject every typical wrong solution, and pass the right ones.

Each catalogue entry is run through its graded suite (``--stretch``) in a subprocess, a few at a
time; the outcome must be a failed run whose failure messages name that mistake.
"""

from __future__ import annotations

import asyncio
import importlib

import pytest

from course import mistakes, vhost
from course.mistakes import Mistake

# One worker runs the whole catalogue (its own subprocesses, a few at a time): the `outcomes`
# fixture runs every selected entry, so a second worker would run them all again.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("mistakes")]


def _catalogue_params() -> list:
    params = []
    for name in mistakes.CATALOGUES:
        try:
            catalogue = importlib.import_module(name)
        except ModuleNotFoundError:
            params.append(pytest.param(name, None, id=f"{name}:missing"))
            continue
        for base in catalogue.BASES:
            correct = Mistake(f"base-{base}", f"the correct {base} solution", (), "", base=base)
            params.append(pytest.param(name, correct, id=f"{catalogue.MODULE}:base-{base}"))
        for entry in catalogue.MISTAKES:
            params.append(pytest.param(name, entry, id=f"{catalogue.MODULE}:{entry.id}"))
    return params


PARAMS = _catalogue_params()


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, broker) -> dict[str, mistakes.Outcome]:
    """Run every selected catalogue entry once, concurrently, the first time any is needed."""
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.originalname != "test_graded_suite_verdict":
            continue
        name, entry = callspec.params["catalogue"], callspec.params["entry"]
        if entry is not None:
            wanted.append((entry, importlib.import_module(name)))
    # A vhost of their own: what wrong solutions leave behind goes with it.
    place = vhost.create(broker.url, broker.management_url, prefix="course-mistakes")
    try:
        return asyncio.run(mistakes.run_all(wanted, place.url))
    finally:
        place.delete()


@pytest.mark.parametrize(("catalogue", "entry"), PARAMS)
def test_graded_suite_verdict(catalogue: str, entry: Mistake | None, outcomes) -> None:
    assert entry is not None, f"the mistake catalogue {catalogue} does not exist yet"
    module = importlib.import_module(catalogue)
    outcome = outcomes[f"{module.MODULE}:{entry.id}"]
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

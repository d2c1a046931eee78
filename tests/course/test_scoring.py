"""The score table and --results-json (inner pytest runs, no broker needed)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from course.scoring import RESULTS_SCHEMA

PLUGIN = ("-p", "course.pytest_plugin", "-p", "no:cacheprovider")

GRADED = """
import pytest

@pytest.mark.task(1)
@pytest.mark.points(2)
def test_passes():
    print("hello from the test")

@pytest.mark.task(1)
@pytest.mark.points(3)
def test_fails():
    assert False, "Step 4: at most capacity=2 handlers may run at once, but 4 ran together."

@pytest.mark.task(1)
@pytest.mark.points(4)
@pytest.mark.stretch
@pytest.mark.skip(reason="Step 5 (starred): remove this line")
def test_starred():
    pass

@pytest.mark.task(2)
@pytest.mark.points(5)
def test_logger():
    pytest.fail("Step 1: the exchange must be DIRECT", pytrace=False)

def test_not_graded():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_graded=GRADED)
    return pytester


def test_the_table_shows_points_per_task_with_stretch_apart(inner) -> None:
    result = inner.runpytest_subprocess(*PLUGIN, "-vv")
    result.stdout.fnmatch_lines(
        [
            "*= score =*",
            "Task 1: Worker (rmq_worker.py)*2 / 5     points   stretch 0 / 4 (1 skipped: *",
            "Task 2: Logger (rmq_logger.py)*0 / 5     points",
            "Total*2 / 10    points   stretch 0 / 4",
        ]
    )


@pytest.mark.parametrize("parallel", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_results_json_matches_the_schema_and_the_outcomes(inner, parallel) -> None:
    # With -n, the tests run in workers and the controller, which collects none, writes the file.
    inner.runpytest_subprocess(*PLUGIN, *parallel, "--results-json", "r.json")
    results = json.loads((inner.path / "r.json").read_text())
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert results["version"] == 3 and results["status"] == "fail" and "message" not in results
    assert (results["score"], results["max_score"]) == (2, 14)
    by_name = {test["name"]: test for test in results["tests"]}
    assert set(by_name) == {"test passes", "test fails", "test starred", "test logger"}
    assert by_name["test passes"]["status"] == "pass"
    assert by_name["test passes"]["output"] == "hello from the test"
    assert by_name["test fails"]["status"] == "fail"
    assert by_name["test fails"]["message"].startswith("Step 4: at most capacity=2 handlers")
    assert (by_name["test fails"]["points"], by_name["test fails"]["max_points"]) == (0, 3)
    assert by_name["test starred"]["status"] == "skip" and by_name["test starred"]["stretch"]
    assert by_name["test logger"]["message"] == "Step 1: the exchange must be DIRECT"
    assert by_name["test logger"]["task_id"] == 2


def test_all_passing_is_pass_and_a_broken_test_file_is_error(pytester, monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(
        test_ok="import pytest\n\n@pytest.mark.task(1)\n@pytest.mark.points(1)\n"
        "def test_ok():\n    pass\n"
    )
    pytester.runpytest_subprocess(*PLUGIN, "--results-json", "ok.json")
    ok = json.loads((pytester.path / "ok.json").read_text())
    assert (ok["status"], ok["score"], ok["max_score"]) == ("pass", 1, 1)

    pytester.makepyfile(test_broken="def test_x(:\n    pass\n")
    pytester.runpytest_subprocess(*PLUGIN, "--results-json", "broken.json")
    broken = json.loads((pytester.path / "broken.json").read_text())
    jsonschema.validate(broken, RESULTS_SCHEMA)
    assert broken["status"] == "error" and "test_broken.py" in broken["message"]


def test_output_is_truncated(pytester, monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(
        test_loud="import pytest\n\n@pytest.mark.task(1)\n@pytest.mark.points(1)\n"
        "def test_loud():\n    print('x' * 5000)\n"
    )
    pytester.runpytest_subprocess(*PLUGIN, "--results-json", "r.json")
    test = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    assert len(test["output"]) < 600 and test["output"].endswith("(output truncated)")


def test_tests_a_stopped_run_never_reached_are_not_run_not_skipped(inner) -> None:
    """With -x the run stops at the first failure: what comes after is "not run"."""
    result = inner.runpytest_subprocess(*PLUGIN, "-x", "--stretch", "--results-json", "r.json")
    result.stdout.fnmatch_lines(["Task 2: Logger (rmq_logger.py)*0 / 5*(1 not run: *"])
    assert "skipped: remove their skip mark" not in result.stdout.str()
    tests = {
        test["name"]: test for test in json.loads((inner.path / "r.json").read_text())["tests"]
    }
    assert tests["test logger"]["status"] == "skip"
    assert tests["test logger"]["message"].startswith("not run: the run stopped")

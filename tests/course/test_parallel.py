"""Under pytest-xdist, tests marked fixed_names run in one worker, one after the other."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "course.pytest_plugin", "-p", "no:cacheprovider")


@pytest.mark.timeout(120)
def test_fixed_name_tests_share_one_worker_and_the_rest_spread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_group="""
        import os, pytest

        @pytest.mark.fixed_names
        @pytest.mark.parametrize("n", range(6))
        def test_fixed(n):
            print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.parametrize("n", range(6))
        def test_free(n):
            print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
        """
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "-n", "2", "--dist", "loadgroup", "-v")
    result.assert_outcomes(passed=12)
    fixed = {
        line.split()[0] for line in result.outlines if "test_fixed[" in line and "PASSED" in line
    }
    assert len(fixed) == 1, f"the fixed-name tests ran in {fixed}: " + result.stdout.str()[-2000:]

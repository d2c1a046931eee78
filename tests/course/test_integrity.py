"""Course integrity: the untouched stubs score 0 for the right reason, and match the reference.

(That the reference gets full marks, starred tests included, and that every catalogued mistake
is rejected, is proven in test_mistakes.py.)
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course import impl

GRADED = impl.ROOT / "tests" / "connectors" / "rabbit"
PUBLIC_CLASSES = {
    "rmq_worker": ("WorkerClientConfig", "WorkerClient", "WorkerConfig", "Worker"),
    "rmq_logger": ("LoggerConfig", "Logger"),
    "rmq_rpc": ("RpcServerConfig", "RpcClientConfig", "RpcError", "RpcServer", "RpcClient"),
}
CONTRACT_PRIVATE = {"_worker", "_handler"}  # private by name, but part of the task contract


def run_graded(impl_dir: Path, tmp_path: Path, url: str, *args: str) -> dict:
    results = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", str(GRADED), "--impl", str(impl_dir), "-q",
         "-p", "no:cacheprovider", "-o", "addopts=", "--results-json", str(results), *args],
        cwd=impl.ROOT, env={**os.environ, "RABBITMQ_URL": url}, capture_output=True,
        timeout=300, check=False,
    )  # fmt: skip
    return json.loads(results.read_text())


@pytest.mark.timeout(300)
def test_untouched_stubs_score_zero_and_every_test_names_what_to_implement(
    tmp_path, rabbitmq_url
) -> None:
    results = run_graded(impl.STUDENT_DIR, tmp_path, rabbitmq_url)
    assert results["score"] == 0 and results["max_score"] > 0
    assert results["status"] == "fail"
    tasks = {test["task_id"] for test in results["tests"]}
    assert tasks == {1, 2, 3}, "every graded suite must run"
    for test in results["tests"]:
        if test["stretch"]:
            assert test["status"] == "skip", f"{test['name']}: starred tests start skipped"
            continue
        assert test["status"] == "fail", f"{test['name']} is {test['status']}: {test['message']}"
        assert test["message"].startswith("Not implemented yet: "), (
            f"{test['name']} fails for another reason than the stub: {test['message'][:500]}"
        )


def _members(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name in CONTRACT_PRIVATE
                                 or name in ("__init__", "__aenter__", "__aexit__"))
    }  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC_CLASSES))
def test_stubs_and_reference_expose_the_same_api(module_name: str) -> None:
    stub = impl.load(impl.STUDENT_DIR, module_name)
    reference = impl.load(impl.REFERENCE_DIR, module_name)
    for class_name in PUBLIC_CLASSES[module_name]:
        stub_cls, ref_cls = getattr(stub, class_name), getattr(reference, class_name)
        if hasattr(stub_cls, "__dataclass_fields__"):
            stub_fields = {n: f.default for n, f in stub_cls.__dataclass_fields__.items()}
            ref_fields = {n: f.default for n, f in ref_cls.__dataclass_fields__.items()}
            # The reference may add optional knobs; the contract's fields must match exactly.
            assert {n: ref_fields[n] for n in stub_fields if n in ref_fields} == stub_fields, (
                f"{class_name}: dataclass fields differ between stub and reference"
            )
            continue
        stub_members, ref_members = _members(stub_cls), _members(ref_cls)
        missing = set(stub_members) - set(ref_members)
        assert not missing, f"{class_name}: the reference lacks {sorted(missing)}"
        for name, stub_member in stub_members.items():
            ref_member = ref_members[name]
            where = f"{module_name}.{class_name}.{name}"
            assert inspect.iscoroutinefunction(stub_member) == inspect.iscoroutinefunction(
                ref_member
            ), f"{where}: async in one, not in the other"
            stub_sig, ref_sig = inspect.signature(stub_member), inspect.signature(ref_member)
            assert list(stub_sig.parameters) == list(ref_sig.parameters), (
                f"{where}: parameters differ: {stub_sig} vs {ref_sig}"
            )
            assert inspect.getdoc(stub_member), f"{where}: the stub needs a docstring"
            assert inspect.getdoc(ref_member), f"{where}: the reference needs a docstring"
    assert stub.__doc__ and "README" in stub.__doc__, "the stub's docstring points to the task"

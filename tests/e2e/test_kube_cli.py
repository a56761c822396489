"""`flux kube` against the real cluster and operator: a run submitted from a file
and watched to its end, a failing one, a paused one resumed, list and delete,
and a file its pods could not import refused before anything is created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FAILING = """
from flux import WorkflowExecutionContext, task, workflow


@task
def check(n: int) -> int:
    raise ValueError(f"{n} is not allowed")


@workflow
async def strict(ctx: WorkflowExecutionContext[int]) -> int:
    return await check(ctx.input)
"""


def flux(cluster: Cluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "FLUX_KUBECONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "flux.local.cli", "kube", *args],
        env={**env, "FLUX_KUBECONFIG": cluster.kubeconfig},
        cwd=REPO,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.timeout(600)
def test_run_watch_list_resume_and_delete_from_the_terminal(
    cluster: Cluster, flux_ns: str, operator: Operator, tmp_path: Path
) -> None:
    ns = ["-n", flux_ns]
    hello = flux(cluster, "run", "examples/hello.py:hello", *ns, "--input", '"World"', "--watch")
    assert hello.returncode == 0, hello.stderr + operator.log_tail()
    assert json.loads(hello.stdout) == "Hello, World"
    hello_run = next(
        line.split()[1] for line in hello.stderr.splitlines() if line.startswith("run ")
    )

    # Over 16 KiB: the input goes to a ConfigMap the run owns, the output to one too.
    big = tmp_path / "input.json"
    big.write_text(json.dumps("W" * 20_000))
    large = flux(cluster, "run", "examples/hello.py:hello", *ns, "--input-file", str(big), "-w")
    assert large.returncode == 0, large.stderr + operator.log_tail()
    assert json.loads(large.stdout) == "Hello, " + "W" * 20_000

    failing = tmp_path / "failing.py"
    failing.write_text(FAILING)
    failed = flux(cluster, "run", f"{failing}:strict", *ns, "--input", "7", "--watch")
    assert failed.returncode == 1, failed.stderr
    assert "failed: " in one_line_error(failed) and "7 is not allowed" in failed.stderr
    assert failed.stdout == ""

    paused = flux(cluster, "run", "examples/pause_approval.py:review_workflow", *ns, "-w")
    assert paused.returncode == 3, paused.stderr
    assert json.loads(paused.stdout) == "quarterly report"
    run = next(line.split()[1] for line in paused.stderr.splitlines() if line.startswith("run "))
    assert f"resume with: flux kube resume {run} -n {flux_ns} --input JSON" in paused.stderr
    decision = {"approved": True, "by": "alice"}
    resumed = flux(cluster, "resume", run, *ns, "--input", json.dumps(decision), "--watch")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"result": "quarterly report", "decision": decision}
    assert flux(cluster, "watch", run, *ns).returncode == 0

    listed = flux(cluster, "list", *ns, "--json")
    assert listed.returncode == 0, listed.stderr
    phases = {r["name"]: r["phase"] for r in json.loads(listed.stdout)["runs"]}
    assert phases[hello_run] == "Succeeded" and phases[run] == "Succeeded"
    assert sorted(phases.values()) == ["Failed", "Succeeded", "Succeeded", "Succeeded"]

    deleted = flux(cluster, "delete", hello_run, *ns)
    assert deleted.returncode == 0, deleted.stderr
    gone = cluster.kubectl("get", "fxrun", hello_run, "-n", flux_ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    missing = flux(cluster, "show", hello_run, *ns)
    assert missing.returncode == 2
    assert one_line_error(missing) == (
        f"error: WorkflowRun {hello_run!r} not found in namespace {flux_ns!r}"
    )


def test_a_file_importing_a_local_module_is_refused_in_one_line(
    cluster: Cluster, flux_ns: str, tmp_path: Path
) -> None:
    (tmp_path / "helpers.py").write_text("def double(n: int) -> int:\n    return 2 * n\n")
    flow = tmp_path / "flow.py"
    flow.write_text("from helpers import double\n" + FAILING)
    result = flux(cluster, "run", f"{flow}:strict", "-n", flux_ns)
    assert result.returncode == 2
    assert "imports local module helpers;" in one_line_error(result)
    workflows = cluster.kubectl("get", "workflows", "-n", flux_ns, "-o", "name").stdout
    assert workflows.strip() == ""

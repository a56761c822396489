"""Runs pinned to the code they started with (issue 14.1), on the real cluster.

A run pauses between two tasks; the Workflow's source is edited meanwhile so
that the second task returns something else. When resumed, a new driver pod
replays the run and a new task pod runs the second task: both must use the
revision the run recorded at its start, not the Workflow's current one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from flux_runs import (
    patch_status,
    resume,
    run_manifest,
    status_of,
    wait_phase,
    workflow_manifest,
)

from flux.k8s.pods import source_configmap_name

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


@task
def first(name: str) -> str:
    return name.upper()


@task
def second(prepared: str) -> str:
    return "VERSION-1 " + prepared


@workflow
async def edited(ctx: WorkflowExecutionContext[str]) -> dict:
    prepared = await first(ctx.input)
    await pause("edit_me", output=prepared)
    return {"prepared": prepared, "second": await second(prepared)}
"""
EDITED = SOURCE.replace('"VERSION-1 "', '"VERSION-2 "')


def revision_configmaps(cluster: Cluster, ns: str, workflow: str) -> set[str]:
    listed = cluster.kubectl(
        "get", "configmaps", "-n", ns, "-l", f"flux.dev/workflow={workflow}", "-o", "json"
    )
    items = json.loads(listed.stdout)["items"]
    return {i["metadata"]["labels"]["flux.dev/revision"] for i in items}


def edit_source(cluster: Cluster, ns: str, workflow: str, source: str) -> None:
    patch = {"spec": {"source": source}}
    cluster.kubectl(
        "patch", "workflow", workflow, "-n", ns, "--type=merge", "-p", json.dumps(patch)
    )


def workflow_revision(cluster: Cluster, ns: str, workflow: str, not_: str | None = None) -> str:
    """The Workflow's current revision, once the operator has set it (to one not ``not_``)."""

    def probe() -> str | None:
        revision = (cluster.get("workflow", workflow, ns).get("status") or {}).get("revision")
        return revision if revision and revision != not_ else None

    found: str = cluster.wait_for("the Workflow's revision", probe, 60)
    return found


@pytest.mark.parametrize("mode", ["PerRun", "Shared"])
def test_a_run_finishes_on_the_code_it_started_with_after_an_edit(
    cluster: Cluster, flux_ns: str, operator: Operator, mode: str
) -> None:
    ns, wf = flux_ns, f"pinned-{mode.lower()}"
    cluster.apply(workflow_manifest(wf, SOURCE, "edited", driverMode=mode), ns)
    old_revision = workflow_revision(cluster, ns, wf)
    cluster.apply(run_manifest(f"{wf}-old", wf, "order"), ns)
    old = wait_phase(cluster, operator, ns, f"{wf}-old", "Paused")
    assert old["revision"] == old_revision and old["pause"]["output"] == "ORDER"

    edit_source(cluster, ns, wf, EDITED)
    new_revision = workflow_revision(cluster, ns, wf, not_=old_revision)
    assert revision_configmaps(cluster, ns, wf) == {old_revision, new_revision}
    cluster.apply(run_manifest(f"{wf}-new", wf, "order"), ns)
    new = wait_phase(cluster, operator, ns, f"{wf}-new", "Paused")
    assert new["revision"] == new_revision

    # Resumed after the edit: a new driver replays it, a new pod runs `second`.
    resume(cluster, ns, f"{wf}-old", "go")
    old = wait_phase(cluster, operator, ns, f"{wf}-old", "Succeeded", "Failed", timeout=240)
    assert old["phase"] == "Succeeded", old.get("error")
    assert old["output"] == {"prepared": "ORDER", "second": "VERSION-1 ORDER"}
    assert old["revision"] == old_revision
    resume(cluster, ns, f"{wf}-new", "go")
    new = wait_phase(cluster, operator, ns, f"{wf}-new", "Succeeded", "Failed", timeout=240)
    assert new["output"] == {"prepared": "ORDER", "second": "VERSION-2 ORDER"}
    assert new["revision"] == new_revision

    # The REVISION printer columns.
    table = cluster.kubectl("get", "fxrun", f"{wf}-old", f"{wf}-new", "-n", ns).stdout
    assert "REVISION" in table and old_revision in table and new_revision in table
    assert new_revision in cluster.kubectl("get", "fxwf", wf, "-n", ns).stdout

    # The old revision goes with the last run that records it; the current one stays.
    cluster.kubectl("delete", "fxrun", f"{wf}-old", "-n", ns)
    cluster.wait_for(
        "the old revision's ConfigMap deleted",
        lambda: revision_configmaps(cluster, ns, wf) == {new_revision} or None,
        60,
        describe=operator.log_tail,
    )
    assert cluster.get("configmap", source_configmap_name(wf, new_revision), ns)["immutable"]


def test_a_run_recording_another_workflows_revision_fails_clearly(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    ns = flux_ns
    cluster.apply(workflow_manifest("pinned-mine", SOURCE, "edited"), ns)
    cluster.apply(workflow_manifest("pinned-other", EDITED, "edited"), ns)
    mine = workflow_revision(cluster, ns, "pinned-mine")
    other = workflow_revision(cluster, ns, "pinned-other")
    cluster.apply(run_manifest("pinned-hostile", "pinned-mine", "x"), ns)
    status = wait_phase(cluster, operator, ns, "pinned-hostile", "Paused")
    assert status["revision"] == mine
    # Its status names the other Workflow's revision (a hostile patch), then resumes.
    patch_status(cluster, ns, "pinned-hostile", {"revision": other, "resume": {"input": "go"}})
    status = wait_phase(cluster, operator, ns, "pinned-hostile", "Failed", "Succeeded")
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "RevisionInvalid"
    assert other in status["error"]["message"]
    assert status_of(cluster, ns, "pinned-hostile").get("output") is None

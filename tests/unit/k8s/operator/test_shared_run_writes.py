"""Every write one run of a Shared Workflow costs, and who makes it (issue 17.3).

The operator and the Workflow's shared driver on one in-memory API server, a
task pod completing as the simulated node completes it. The list below is the
accounting in benchmarks/RESULTS.md ("Shared: every write of one run"): a change
that adds a write to a run fails here first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flux import WorkflowExecutionContext, task, workflow
from flux.k8s.kube import PODS, RUNS, WORKFLOWS
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.reconciler import Reconciler
from flux.runtime.shared_driver import SharedDriver

NS = "ns"
WRITES = frozenset({"create", "replace", "patch", "delete"})


@task
def noop(i: int) -> None:
    return None


@workflow
async def single(ctx: WorkflowExecutionContext[int]) -> None:
    return await noop(ctx.input)


def shared_workflow() -> dict[str, Any]:
    return {
        "metadata": {"name": "wf", "namespace": NS, "generation": 1},
        "spec": {"entrypoint": "tests.single:single", "driverMode": "Shared"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "message": "ok", "observedGeneration": 1}
            ]
        },
    }


def new_run(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {"workflowRef": {"name": "wf"}, "input": 1},
    }


class Writes:
    """The write requests made since the last call, as (verb, resource)."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube, self.seen = kube, len(kube.requests)

    def since(self) -> list[tuple[str, str]]:
        new = self.kube.requests[self.seen :]
        self.seen = len(self.kube.requests)
        return sorted((verb, resource) for verb, resource in new if verb in WRITES)


def completed(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the simulated node leaves it: Succeeded, no output."""
    terminated = {"exitCode": 0, "reason": "Completed", "message": '{"outcome":"completed"}'}
    pod["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [{"name": "task", "state": {"terminated": terminated}}],
    }
    return pod


def test_one_shared_run_costs_three_operator_and_two_driver_status_writes(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(WORKFLOWS, shared_workflow())

    async def scenario() -> None:
        # A first run starts the Workflow's shared driver pod: once, not a run's cost.
        await reconciler.run_event("ADDED", kube.put(RUNS, new_run("first")))
        writes = Writes(kube)
        await reconciler.run_event("ADDED", kube.put(RUNS, new_run("r1")))
        # The operator: the run's revision (an older driver must not claim it),
        # Pending, and that the shared driver has it, in one patch.
        assert writes.since() == [("patch", "workflowruns/status")]
        body = kube.stored(RUNS, NS, "r1") or {}
        revision = body["status"]["revision"]
        driver = SharedDriver(
            kube, NS, "wf", single, events=EventRecorder(kube, "flux-driver"), revision=revision
        )
        await driver.consider("MODIFIED", body)
        # The driver: WORKFLOW_STARTED and the task's TASK_STARTED, Running.
        assert writes.since() == [("patch", "workflowruns/status")]
        await reconciler.run_event("MODIFIED", kube.stored(RUNS, NS, "r1") or {})
        # The operator: the task pod, and the call's record pointing to it.
        assert writes.since() == [("create", "pods"), ("patch", "workflowruns/status")]
        (pod,) = [
            p for p in kube.all(PODS, NS) if p["metadata"]["labels"].get("flux.dev/run") == "r1"
        ]
        await reconciler.pod_event("MODIFIED", kube.put(PODS, completed(pod)), "r1")
        await reconciler.applier.clearing.drain()
        # The operator: the outcome in the record, then (in the background) the
        # pod's log tail kept and the pod gone.
        assert writes.since() == [
            ("create", "configmaps"),
            ("delete", "pods"),
            ("patch", "workflowruns/status"),
        ]
        await driver.consider("MODIFIED", kube.stored(RUNS, NS, "r1") or {})
        # The driver: TASK_COMPLETED, WORKFLOW_COMPLETED, Succeeded; the Succeeded Event.
        assert writes.since() == [("create", "events"), ("patch", "workflowruns/status")]
        assert (kube.stored(RUNS, NS, "r1") or {})["status"]["phase"] == "Succeeded"
        await reconciler.run_event("MODIFIED", kube.stored(RUNS, NS, "r1") or {})
        await reconciler.pod_event("DELETED", pod, "r1")
        await reconciler.applier.events.drain()
        assert writes.since() == []  # finished: nothing more

    asyncio.run(scenario())

"""The in-memory API server as the drivers' tests use it, and the workflow they drive."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flux import WorkflowExecutionContext, task, workflow
from flux.k8s.kube import EVENTS, RUNS, JsonPatch, Resource
from flux.k8s.kube.client import Body
from flux.k8s.kube.fake import FakeKube
from flux.tasks import pause

NS = "ns"


class DriverKube(FakeKube):
    """A FakeKube that holds the drivers to their promise: they append to a run's
    status with JSON patches and never rewrite it, except a merge patch that fails
    a run whose input cannot be read (allowed once ``merge_allowed`` is set)."""

    merge_allowed: bool = False

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: JsonPatch | Body, **kw: Any
    ) -> Body:
        if resource == RUNS and not isinstance(patch, JsonPatch):
            assert self.merge_allowed, "the driver appends with JSON patch, never rewrites"
        return await super().patch(resource, namespace, name, patch, **kw)


class Runs:
    """The WorkflowRuns in namespace ``ns`` of a FakeKube, as a test playing the
    operator (or a user) sees and changes them."""

    def __init__(self, kube: DriverKube) -> None:
        self.kube = kube

    def add(self, body: Body) -> Body:
        return self.kube.put(RUNS, copy.deepcopy(body))

    def new(self, input: Any, name: str = "r1") -> Body:
        """A new run of workflow "wf" with ``input``, as a user creates it (no status)."""
        return self.add(
            {
                "metadata": {"name": name, "namespace": NS},
                "spec": {"workflowRef": {"name": "wf"}, "input": input},
            }
        )

    def body(self, name: str = "r1") -> Body:
        found = self.kube.stored(RUNS, NS, name)
        assert found is not None, f"no run {name}"
        return found

    def status(self, name: str = "r1") -> dict[str, Any]:
        status: dict[str, Any] = self.body(name)["status"]
        return status

    def edit(self, change: Callable[[dict[str, Any]], object], name: str = "r1") -> Body:
        """Change the run's status (a new resourceVersion, a watch event), as the
        operator's writes do."""
        body = self.body(name)
        change(body.setdefault("status", {}))
        return self.kube.put(RUNS, body)

    def set_status(self, name: str = "r1", **fields: Any) -> Body:
        return self.edit(lambda status: status.update(fields), name)

    def writes(self) -> int:
        """Status writes to runs so far (the operator's edits above not counted)."""
        return self.kube.count("patch", "workflowruns/status")

    def events(self) -> list[tuple[str, str, str, str]]:
        """Events posted so far: (run, type, reason, message)."""
        return [
            (e["involvedObject"]["name"], e["type"], e["reason"], e["message"])
            for e in self.kube.all(EVENTS, NS)
        ]

    def complete_outstanding(self, name: str = "r1") -> list[str]:
        """Play the operator: run every recorded call of ``double`` and record its outcome."""
        done: list[str] = []

        def complete(status: dict[str, Any]) -> None:
            settled = {e["sourceId"] for e in status["history"] if e["type"] == "TASK_COMPLETED"}
            records = status.setdefault("tasks", [])
            for event in status["history"]:
                value = event.get("value") or {}
                if event["type"] != "TASK_STARTED" or "task" not in value:
                    continue
                call_id = event["sourceId"]
                if call_id in settled or any(r["callId"] == call_id for r in records):
                    continue
                assert value["task"].endswith(":double")
                records.append(
                    {
                        "callId": call_id,
                        "name": event["name"],
                        "state": "Completed",
                        "output": 2 * value["args"][0],
                    }
                )
                done.append(call_id)

        body = self.body(name)
        complete(body["status"])
        if done:
            self.kube.put(RUNS, body)
        return done


@task
def double(x: int) -> int:
    return 2 * x


@workflow
async def doubling_pipeline(ctx: WorkflowExecutionContext[int]) -> dict[str, Any]:
    a = await double(ctx.input)
    b = await double(a)
    decision = await pause("approve", output=b)
    return {"b": b, "decision": decision}

"""Shared driver mode: the operator's choice of driver, and one driver for many runs."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from test_driver import FakeRuns, complete_outstanding, new_run, pipeline_wf
from test_k8s_reconcile import WF_STARTED, plan, started, workflow

from flux.runtime.shared_driver import SharedDriver, serves


def shared_workflow() -> dict[str, Any]:
    return workflow(entrypoint="examples.hello:hello", driverMode="Shared")


def test_a_new_run_of_a_shared_workflow_uses_the_shared_driver_pod() -> None:
    result = plan({}, wf=shared_workflow())
    assert result.status["driver"] == {"shared": True}
    assert result.shared_driver is not None
    assert result.shared_driver["metadata"]["labels"]["flux.dev/role"] == "shared-driver"
    assert result.shared_driver["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
    env = {e["name"]: e["value"] for e in result.shared_driver["spec"]["containers"][0]["env"]}
    assert env["FLUX_WORKFLOW_NAME"] == "wf" and "FLUX_RUN" not in env
    assert not [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "driver"]


def test_a_shared_run_waiting_for_its_tasks_needs_no_driver() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0")],
        "driver": {"shared": True},
        "tasks": [{"callId": "say#0", "name": "say", "state": "Running", "pod": "p"}],
    }
    assert plan(status, wf=shared_workflow()).shared_driver is None


def test_a_run_keeps_the_driver_mode_it_started_with() -> None:
    status = {"phase": "Running", "history": [], "driver": {"starts": 1, "failures": 0}}
    result = plan(status, wf=shared_workflow())
    assert result.shared_driver is None
    assert "shared" not in result.status.get("driver", {})


def _shared(body: dict[str, Any], name: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    body["status"] = {"driver": {"shared": True}}
    return body


class ManyRuns:
    """FakeRuns for several runs, by name."""

    def __init__(self, bodies: dict[str, dict[str, Any]]):
        self.by_name = {name: FakeRuns(body) for name, body in bodies.items()}

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.by_name[name].get(namespace, name)

    async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
        return await self.by_name[name].patch_status(namespace, name, ops)


def test_one_shared_driver_advances_several_runs_to_their_end() -> None:
    bodies = {n: _shared(new_run(i + 1), n) for i, n in enumerate(["a", "b"])}
    runs = ManyRuns(bodies)
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        for name in bodies:
            await driver.consider("ADDED", copy.deepcopy(runs.by_name[name].body))
        for _ in range(2):
            for name, fake in runs.by_name.items():
                stale = copy.deepcopy(fake.body)
                stale["metadata"]["resourceVersion"] = "0"
                await driver.consider("MODIFIED", stale)  # older than its own write
                assert driver.held[name].awaiting == fake.body["metadata"]["resourceVersion"]
                assert complete_outstanding(fake)
                fake.patches += 1
                fake.body["metadata"]["resourceVersion"] = str(fake.patches)
                await driver.consider("MODIFIED", copy.deepcopy(fake.body))
        for name, fake in runs.by_name.items():
            assert fake.body["status"]["phase"] == "Paused", name
            assert not serves(fake.body)
            fake.body["status"]["resume"] = {"input": f"ok-{name}"}
            fake.patches += 1
            fake.body["metadata"]["resourceVersion"] = str(fake.patches)
            assert serves(fake.body)
            await driver.consider("MODIFIED", copy.deepcopy(fake.body))

    asyncio.run(scenario())
    for name, fake in runs.by_name.items():
        status = fake.body["status"]
        assert status["phase"] == "Succeeded"
        assert status["output"]["decision"] == f"ok-{name}"
    assert driver.held == {}  # finished runs are let go
    assert runs.by_name["a"].body["status"]["output"]["b"] == 4
    assert runs.by_name["b"].body["status"]["output"]["b"] == 8

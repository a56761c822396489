"""Workflows: the Ready condition and the inline source's ConfigMap, on FakeKube."""

from __future__ import annotations

import asyncio
from typing import Any

from flux.k8s.kube import CONFIGMAPS, EVENTS, RUNS, WORKFLOWS
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.pods import source_configmap_name
from flux.k8s.protocol import INLINE_SOURCE_MODULE


def workflow(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "wf", "namespace": "ns"},
        "spec": spec or {"entrypoint": "examples.hello:hello"},
    }


def test_a_valid_workflow_is_ready_once(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow())
        await reconciler.workflow_event(None, body)
        stored = kube.stored(WORKFLOWS, "ns", "wf") or {}
        (ready,) = stored["status"]["conditions"]
        assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Valid")
        assert stored["status"]["observedGeneration"] == 1
        await reconciler.events.drain()
        (event,) = kube.all(EVENTS, "ns")
        assert (event["type"], event["reason"]) == ("Normal", "Valid")
        assert event["involvedObject"]["kind"] == "Workflow"
        # Its own write, seen again: nothing changes, nothing is written.
        await reconciler.workflow_event("MODIFIED", stored)
        assert kube.count("patch", "workflows/status") == 1

    asyncio.run(scenario())


def test_inline_source_is_kept_in_a_configmap(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow(function="f", source="def f(x):\n    return x\n"))
        await reconciler.workflow_event("ADDED", body)
        name = source_configmap_name("wf")
        stored = kube.stored(CONFIGMAPS, "ns", name) or {}
        assert stored["data"] == {f"{INLINE_SOURCE_MODULE}.py": "def f(x):\n    return x\n"}
        assert stored["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
        body["spec"]["source"] = "def f(x):\n    return 2 * x\n"
        await reconciler.workflow_event("MODIFIED", body)
        stored = kube.stored(CONFIGMAPS, "ns", name) or {}
        assert "2 * x" in stored["data"][f"{INLINE_SOURCE_MODULE}.py"]
        assert (kube.count("create", CONFIGMAPS), kube.count("update", CONFIGMAPS)) == (1, 2)

    asyncio.run(scenario())


def test_a_syntax_error_makes_it_not_ready_with_a_warning(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow(function="f", source="def f(:\n"))
        await reconciler.workflow_event("ADDED", body)
        (ready,) = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]["conditions"]
        assert (ready["status"], ready["reason"]) == ("False", "SourceSyntaxError")
        await reconciler.events.drain()
        assert [e["type"] for e in kube.all(EVENTS, "ns")] == ["Warning"]

    asyncio.run(scenario())


def test_runs_use_the_workflow_as_its_watch_shows_it(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow())
        await reconciler.workflow_event("ADDED", body)
        run = kube.put(
            RUNS,
            {
                "metadata": {"name": "r1", "namespace": "ns"},
                "spec": {"workflowRef": {"name": "wf"}},
            },
        )
        await reconciler.run_event("ADDED", run)
        assert kube.count("get", WORKFLOWS) == 0
        await reconciler.workflow_event("DELETED", body)
        await kube.delete(WORKFLOWS, "ns", "wf")
        run = kube.put(RUNS, {**run, "metadata": {"name": "r2", "namespace": "ns"}})
        await reconciler.run_event("ADDED", run)
        assert kube.count("get", WORKFLOWS) == 1  # forgotten: read, not found
        status = (kube.stored(RUNS, "ns", "r2") or {})["status"]
        assert status["phase"] == "Failed"

    asyncio.run(scenario())

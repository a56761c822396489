"""Workflows: the Ready condition and the revisions' ConfigMaps, on FakeKube."""

from __future__ import annotations

import asyncio
from typing import Any

from flux.k8s.kube import CONFIGMAPS, EVENTS, PODS, RUNS, WORKFLOWS
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


def revision_configmaps(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["labels"]["flux.dev/revision"]: c for c in kube.all(CONFIGMAPS, "ns")}


def test_each_revision_of_an_inline_source_is_an_immutable_configmap(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow(function="f", source="def f(x):\n    return x\n"))
        await reconciler.workflow_event("ADDED", body)
        stored_wf = kube.stored(WORKFLOWS, "ns", "wf") or {}
        first = stored_wf["status"]["revision"]
        (configmap,) = revision_configmaps(kube).values()
        assert configmap["metadata"]["name"] == source_configmap_name("wf", first)
        assert configmap["immutable"] is True
        assert configmap["data"][f"{INLINE_SOURCE_MODULE}.py"] == "def f(x):\n    return x\n"
        labels = configmap["metadata"]["labels"]
        assert labels["flux.dev/workflow"] == "wf" and labels["flux.dev/revision"] == first
        assert labels["app.kubernetes.io/part-of"] == "flux"
        (owner,) = configmap["metadata"]["ownerReferences"]
        assert owner["kind"] == "Workflow" and owner["controller"] is False
        # Seen again: nothing is written.
        await reconciler.workflow_event("MODIFIED", stored_wf)
        assert kube.count("create", CONFIGMAPS) == 1
        assert kube.count("update", CONFIGMAPS) == 0
        # Edited: a new revision, a new ConfigMap; the old one, used by no run, goes.
        edited = {
            **stored_wf,
            "spec": {**stored_wf["spec"], "source": "def f(x):\n    return 2 * x\n"},
        }
        edited["metadata"] = {**edited["metadata"], "generation": 2}
        edited = kube.put(WORKFLOWS, edited)
        reconciler.workflows.collect_delay = 0.05
        await reconciler.workflow_event("MODIFIED", edited)
        second = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]["revision"]
        assert second != first
        # Not at once: a pass that read the Workflow before the edit may record it.
        assert sorted(revision_configmaps(kube)) == sorted([first, second])
        await reconciler.workflows.drain()
        assert list(revision_configmaps(kube)) == [second]
        assert kube.count("update", CONFIGMAPS) == 0

    asyncio.run(scenario())


def test_an_older_revision_stays_while_a_run_records_it(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = kube.put(WORKFLOWS, workflow(function="f", source="def f(x):\n    return x\n"))
        await reconciler.workflow_event("ADDED", body)
        first = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]["revision"]
        run = kube.put(
            RUNS,
            {
                "metadata": {"name": "r1", "namespace": "ns"},
                "spec": {"workflowRef": {"name": "wf"}},
            },
        )
        await reconciler.run_event("ADDED", run)
        run = kube.stored(RUNS, "ns", "r1") or {}
        assert run["status"]["revision"] == first
        stored_wf = kube.stored(WORKFLOWS, "ns", "wf") or {}
        edited = {**stored_wf, "spec": {**stored_wf["spec"], "function": "g"}}
        edited["metadata"] = {**edited["metadata"], "generation": 2}
        reconciler.workflows.collect_delay = 0
        await reconciler.workflow_event("MODIFIED", kube.put(WORKFLOWS, edited))
        await reconciler.workflows.drain()
        second = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]["revision"]
        assert sorted(revision_configmaps(kube)) == sorted([first, second])
        # The run keeps its revision: its pods mount the first one's ConfigMap.
        await reconciler.reconcile("ns", "r1")
        run = kube.stored(RUNS, "ns", "r1") or {}
        assert run["status"]["revision"] == first
        (driver,) = kube.all(PODS, "ns")
        (volume,) = [v for v in driver["spec"]["volumes"] if v["name"] == "source"]
        assert volume["configMap"]["name"] == source_configmap_name("wf", first)
        env = {e["name"]: e["value"] for e in driver["spec"]["containers"][0]["env"]}
        assert env["FLUX_WORKFLOW"] == f"{INLINE_SOURCE_MODULE}:f"
        # Deleted, the run was the last to record it: the first revision goes.
        await kube.delete(RUNS, "ns", "r1")
        await reconciler.run_event("DELETED", run)
        assert list(revision_configmaps(kube)) == [second]

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

"""Task logs kept before their pods are deleted, and read back (on FakeKube)."""

from __future__ import annotations

import asyncio
from typing import Any

from flux.k8s import log_archive, runstore
from flux.k8s.kube import CONFIGMAPS, PODS, RUNS, WORKFLOWS, Forbidden, NotFound
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.logs import LogKeeper, PodLogs
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.protocol import RESULT_LOG_MARKER, TaskResult
from flux.k8s.states import Outcome
from support.k8s_bodies import WF_STARTED, logged_task_pod, started, workflow


def running_run(*calls: str) -> dict[str, Any]:
    history = [WF_STARTED]
    for i, call_id in enumerate(calls):
        event = {**started(call_id), "id": 2 + i}
        event["value"] = {**event["value"], "secrets": []}
        history.append(event)
    return {
        "metadata": {"name": "r1", "namespace": "ns", "generation": 1, "uid": "run-uid"},
        "spec": {"workflowRef": {"name": "wf"}, "input": "World"},
        "status": {"phase": "Running", "history": history, "driver": {"pod": None}},
    }


def finish(kube: FakeKube, pod: dict[str, Any], message: str, exit_code: int = 0) -> None:
    pod["metadata"]["resourceVersion"] = "999"
    terminated = {
        "exitCode": exit_code,
        "message": message,
        "startedAt": "2026-01-01T12:00:01Z",
        "finishedAt": "2026-01-01T12:00:02Z",
    }
    pod["status"] = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [{"state": {"terminated": terminated}}],
    }
    kube.put(PODS, pod)


def task_pods(kube: FakeKube) -> list[dict[str, Any]]:
    return [p for p in kube.all(PODS, "ns") if log_archive.is_task_pod(p)]


async def pods_started(kube: FakeKube, reconciler: Reconciler, *calls: str) -> list[dict[str, Any]]:
    """The task pods the operator starts for a run with ``calls`` open."""
    kube.put(WORKFLOWS, workflow())
    await reconciler.run_event("ADDED", kube.put(RUNS, running_run(*calls)))
    return task_pods(kube)


def completed(value: str = "1") -> str:
    return TaskResult(outcome=Outcome.COMPLETED, value=value).to_message()


def test_a_finished_task_pod_s_log_is_kept_before_the_pod_is_deleted(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        (pod,) = await pods_started(kube, reconciler, "say#0")
        name = pod["metadata"]["name"]
        kube.logs[("ns", name)] = "hello from the task\n"
        finish(kube, pod, completed('"ok"'))
        await reconciler.pod_event("MODIFIED", pod, "r1")
        await reconciler.applier.clearing.drain()
        assert task_pods(kube) == []
        assert kube.count("get", "pods/log") == 1  # one read per finished pod
        (configmap,) = kube.all(CONFIGMAPS, "ns")
        assert configmap["metadata"]["labels"]["flux.dev/role"] == "archive-logs"
        assert configmap["metadata"]["ownerReferences"][0]["uid"] == "run-uid"
        (kept,) = await runstore.load_task_logs(kube, "ns", "r1")
        assert kept["log"] == "hello from the task\n"
        assert kept["calls"] == [{"callId": "say#0", "step": "attempt", "attempt": 1}]
        assert kept["pod"] == name and kept["missing"] is None
        assert kept["finished"] == "2026-01-01T12:00:02Z"
        # Nothing about the logs is written into the run.
        assert "log" not in str((kube.stored(RUNS, "ns", "r1") or {})["status"]).lower()

    asyncio.run(scenario())


def test_a_result_in_the_log_and_the_kept_log_cost_one_read(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        (pod,) = await pods_started(kube, reconciler, "say#0")
        result = TaskResult(outcome=Outcome.COMPLETED, value='"' + "x" * 5000 + '"')
        kube.logs[("ns", pod["metadata"]["name"])] = (
            f"working\n\n{RESULT_LOG_MARKER}{result.to_message()}\n"
        )
        finish(kube, pod, '{"outcome":"completed","inLog":true}')
        await reconciler.pod_event("MODIFIED", pod, "r1")
        await reconciler.applier.clearing.drain()
        assert kube.count("get", "pods/log") == 1
        (kept,) = await runstore.load_task_logs(kube, "ns", "r1")
        assert kept["log"] == "working\n"  # the result line is the output, not the log
        status = (kube.stored(RUNS, "ns", "r1") or {})["status"]
        assert status["tasks"][0]["state"] == "Completed"

    asyncio.run(scenario())


def test_a_log_that_cannot_be_read_is_recorded_missing_and_the_pod_still_goes(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        (pod,) = await pods_started(kube, reconciler, "say#0")
        kube.fail("get", "pods/log", Forbidden("pods/log is forbidden"))
        finish(kube, pod, completed())
        await reconciler.pod_event("MODIFIED", pod, "r1")
        await reconciler.applier.clearing.drain()
        assert task_pods(kube) == []
        (kept,) = await runstore.load_task_logs(kube, "ns", "r1")
        assert kept["log"] == "" and "pods/log is forbidden" in (kept["missing"] or "")
        status = (kube.stored(RUNS, "ns", "r1") or {})["status"]
        assert status["tasks"][0]["state"] == "Completed"

    asyncio.run(scenario())


def test_a_refused_log_configmap_does_not_hold_up_the_deletion(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        (pod,) = await pods_started(kube, reconciler, "say#0")
        kube.fail("create", CONFIGMAPS, Forbidden("quota exceeded"))
        finish(kube, pod, completed())
        await reconciler.pod_event("MODIFIED", pod, "r1")
        await reconciler.applier.clearing.drain()
        assert task_pods(kube) == []
        assert await runstore.load_task_logs(kube, "ns", "r1") == []

    asyncio.run(scenario())


def test_logs_of_one_pass_share_a_configmap_and_are_filtered_by_call_and_attempt(
    kube: FakeKube,
) -> None:
    async def scenario() -> None:
        run = running_run()
        pods = []
        for i, (call_id, attempt) in enumerate([("a#0", 1), ("b#0", 1), ("b#0", 2)]):
            ran = {"terminated": {"startedAt": f"2026-01-01T12:00:0{i}Z"}}
            pod = logged_task_pod(f"r1-p{i}", call_id, attempt, ran)
            kube.put(PODS, pod)
            kube.logs[("ns", f"r1-p{i}")] = f"log {i}\n"
            pods.append(pod)
        never_ran = {
            "metadata": {"name": "r1-pending", "labels": {"flux.dev/role": "task"}},
            "status": {"phase": "Pending"},
        }
        deleting = ["r1-p0", "r1-p1", "r1-p2", "r1-pending", "r1-driver"]
        await LogKeeper(kube).keep(run, [*pods, never_ran], deleting, PodLogs(kube, "ns"))
        assert len(kube.all(CONFIGMAPS, "ns")) == 1
        assert kube.count("get", "pods/log") == 3  # the pod that never ran is not read
        every = await runstore.load_task_logs(kube, "ns", "r1")
        assert [e["log"] for e in every] == ["log 0\n", "log 1\n", "log 2\n"]
        b = await runstore.load_task_logs(kube, "ns", "r1", call_id="b#0")
        assert [e["pod"] for e in b] == ["r1-p1", "r1-p2"]
        second = await runstore.load_task_logs(kube, "ns", "r1", call_id="b#0", attempt=2)
        assert [e["log"] for e in second] == ["log 2\n"]
        assert await runstore.load_task_logs(kube, "ns", "other") == []

    asyncio.run(scenario())


def test_a_log_read_that_hangs_is_given_up(kube: FakeKube, monkeypatch: Any) -> None:
    async def hang(namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        await asyncio.sleep(60)
        return ""

    async def scenario() -> None:
        monkeypatch.setattr("flux.k8s.operator.logs.LOG_READ_SECONDS", 0.01)
        monkeypatch.setattr(kube, "pod_log", hang)
        pod = {
            "metadata": {"name": "r1-p", "labels": {"flux.dev/role": "task"}},
            "status": {"containerStatuses": [{"state": {"running": {}}}]},
        }
        await LogKeeper(kube).keep(running_run(), [pod], ["r1-p"], PodLogs(kube, "ns"))
        (kept,) = await runstore.load_task_logs(kube, "ns", "r1")
        assert "not read within" in (kept["missing"] or "")

    asyncio.run(scenario())


def test_a_gone_pod_s_log_is_missing(kube: FakeKube) -> None:
    async def scenario() -> None:
        pod = {
            "metadata": {"name": "r1-gone", "labels": {"flux.dev/role": "task"}},
            "status": {"containerStatuses": [{"state": {"terminated": {}}}]},
        }
        logs = PodLogs(kube, "ns")
        try:
            await logs.read("r1-gone")
        except NotFound:
            pass
        else:
            raise AssertionError("a pod that is not there has no log")
        await LogKeeper(kube).keep(running_run(), [pod], ["r1-gone"], logs)
        (kept,) = await runstore.load_task_logs(kube, "ns", "r1")
        assert kept["missing"] is not None

    asyncio.run(scenario())


def test_a_pass_settling_many_pods_reads_each_log_once_and_writes_one_configmap(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        pods = await pods_started(kube, reconciler, *(f"say#{i}" for i in range(20)))
        assert len(pods) == 20
        result = completed()
        for pod in pods:
            kube.logs[("ns", pod["metadata"]["name"])] = f"{pod['metadata']['name']}\n"
            finish(kube, pod, result)
            reconciler.cache.pod_seen("MODIFIED", pod)  # seen, no pass yet
        await reconciler.reconcile("ns", "r1")
        await reconciler.applier.clearing.drain()
        assert task_pods(kube) == []
        assert kube.count("get", "pods/log") == 20
        assert kube.count("create", CONFIGMAPS) == 1
        kept = await runstore.load_task_logs(kube, "ns", "r1")
        assert sorted(e["log"] for e in kept) == sorted(f"{p['metadata']['name']}\n" for p in pods)

    asyncio.run(scenario())

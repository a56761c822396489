"""`flux kube logs`: kept logs and live ones read back, filtered, followed (on FakeKube)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import pytest

from flux.k8s import inspect, log_archive
from flux.k8s.kube import PODS, RUNS, Kube
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.logs import LogKeeper, PodLogs
from flux.local import cli, kube_cli
from support.k8s_bodies import logged_task_pod


def started(call_id: str) -> dict[str, Any]:
    return {"id": 2, "type": "TASK_STARTED", "sourceId": call_id, "name": "t", "value": {}}


@pytest.fixture
def cluster() -> FakeKube:
    """A run whose say#0 failed once (its first pod gone, its log kept), retried in
    a pod now running; and a call hi#0 whose finished pod is not cleared away yet."""
    kube = FakeKube()
    run = kube.put(
        RUNS,
        {
            "metadata": {"name": "r1", "namespace": "ns", "uid": "u"},
            "spec": {"workflowRef": {"name": "wf"}},
            "status": {"phase": "Running", "history": [started("say#0"), started("hi#0")]},
        },
    )
    first = logged_task_pod(
        "r1-say-1", "say#0", 1, {"terminated": {"startedAt": "2026-01-01T12:00:00Z"}}
    )
    kube.logs[("ns", "r1-say-1")] = "first try\n"

    async def keep() -> None:
        await LogKeeper(kube).keep(run, [first], ["r1-say-1"], PodLogs(kube, "ns"))

    asyncio.run(keep())
    kube.put(
        PODS,
        logged_task_pod("r1-say-2", "say#0", 2, {"running": {"startedAt": "2026-01-01T12:00:05Z"}}),
    )
    kube.logs[("ns", "r1-say-2")] = "second try\n"
    finished = {"startedAt": "2026-01-01T12:00:01Z", "finishedAt": "2026-01-01T12:00:02Z"}
    kube.put(PODS, logged_task_pod("r1-hi-1", "hi#0", 1, {"terminated": finished}))
    kube.logs[("ns", "r1-hi-1")] = "hi\n"
    return kube


def test_kept_and_live_logs_are_read_in_the_order_they_ran(cluster: FakeKube) -> None:
    entries = asyncio.run(inspect.read_task_logs("ns", "r1", kube=cluster))
    assert [(e["pod"], e["log"], e["live"], e["running"]) for e in entries] == [
        ("r1-say-1", "first try\n", False, False),
        ("r1-hi-1", "hi\n", True, False),
        ("r1-say-2", "second try\n", True, True),
    ]
    second = asyncio.run(inspect.read_task_logs("ns", "r1", "say#0", 2, kube=cluster))
    assert [e["pod"] for e in second] == ["r1-say-2"]


def test_an_unknown_call_or_run_is_one_error(cluster: FakeKube) -> None:
    with pytest.raises(inspect.UnknownCallError, match="has no task call 'nope#0'"):
        asyncio.run(inspect.read_task_logs("ns", "r1", "nope#0", kube=cluster))
    with pytest.raises(inspect.RunNotFoundError):
        asyncio.run(inspect.read_task_logs("ns", "r2", kube=cluster))


def flux_kube_logs(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    def on_fake(_: Kube | None, doing: str) -> Any:
        return inspect.connected(kube, doing)

    monkeypatch.setattr(kube_cli, "open_cluster", on_fake)
    monkeypatch.setenv("FLUX_KUBECONFIG", "/nonexistent")  # never a real cluster
    monkeypatch.setattr(sys, "argv", ["flux", "kube", "logs", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_flux_kube_logs_prints_each_attempt_under_a_header(
    cluster: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flux_kube_logs(cluster, monkeypatch, capsys, "r1", "-n", "ns", "--task", "say#0")
    assert code == 0
    assert out == (
        "==> say#0 attempt 1 (pod r1-say-1) <==\nfirst try\n"
        "==> say#0 attempt 2 (pod r1-say-2; running) <==\nsecond try\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r1", "-n", "ns", "--task", "nope#0"], "error: WorkflowRun 'r1' has no task call"),
        (["r2", "-n", "ns"], "error: WorkflowRun 'r2' not found in namespace 'ns'"),
        (["r1", "-n", "ns", "--follow", "--json"], "error: --follow streams text"),
        (["r1", "-n", "ns", "--follow"], "error: 2 attempts are running"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    cluster: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    cluster.put(PODS, logged_task_pod("r1-hi-2", "hi#0", 2, {"running": {}}))
    code, out, err = flux_kube_logs(cluster, monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_follow_streams_the_running_attempt_until_it_ends(
    cluster: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def attempt_ends() -> None:
        cluster.logs[("ns", "r1-say-2")] += "done\n"
        pod = cluster.stored(PODS, "ns", "r1-say-2") or {}
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
        cluster.put(PODS, pod)

    timer = threading.Timer(0.3, attempt_ends)
    timer.start()
    try:
        code, out, _ = flux_kube_logs(
            cluster, monkeypatch, capsys, "r1", "-n", "ns", "--task", "say#0", "--follow"
        )
    finally:
        timer.join()
    assert code == 0
    assert out.endswith("==> say#0 attempt 2 (pod r1-say-2; running) <==\nsecond try\ndone\n")


def test_json_lists_the_entries(
    cluster: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flux_kube_logs(cluster, monkeypatch, capsys, "r1", "-n", "ns", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [e["pod"] for e in entries] == ["r1-say-1", "r1-hi-1", "r1-say-2"]
    assert set(entries[0]) >= set(log_archive.LogEntry.__annotations__) | {"live", "running"}

"""Keeping a WorkflowRun within its budget: chunks, open calls, record patches, sealing."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import gzip
import json
import random
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from flux import WorkflowExecutionContext, task, workflow
from flux.engine.instance import WorkflowInstance
from flux.k8s import archive, runstore
from flux.k8s.config import OperatorConfig
from flux.k8s.kube import CONFIGMAPS
from flux.k8s.kube.fake import FakeKube
from flux.k8s.kube.objects import create_or_replace
from flux.k8s.operator.status_patch import task_record_ops
from flux.k8s.reconcile import Observed, plan_run
from flux.runtime.driver import Driver

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs


def started(call_id: str) -> dict[str, Any]:
    return {
        "type": "TASK_STARTED",
        "sourceId": call_id,
        "name": call_id.split("#")[0],
        "value": {"task": "m:t", "args": [], "kwargs": {}, "policy": {}},
    }


def completed(call_id: str) -> dict[str, Any]:
    return {"type": "TASK_COMPLETED", "sourceId": call_id, "name": "t", "value": None}


def test_chunks_round_trip_and_stay_under_the_limit() -> None:
    rng = random.Random(1)
    # Random text barely compresses, so this needs several chunks.
    items = [{"i": i, "blob": f"{rng.getrandbits(4000):x}"} for i in range(400)]
    chunks = archive.split(items, limit=64 * 1024)
    assert len(chunks) > 1
    assert all(len(c) <= 64 * 1024 for c, _ in chunks)
    assert [x for c, _ in chunks for x in archive.unpack(c)] == items
    assert [n for _, n in chunks] == [len(archive.unpack(c)) for c, _ in chunks]


def test_a_chunk_reads_back_one_item_at_a_time() -> None:
    items = [{"i": i, "s": "x" * i} for i in range(50)] + [[], None, "]", 1.5]
    assert list(archive.unpack_items(archive.pack(items))) == items
    assert list(archive.unpack_items(archive.pack([]))) == []
    spaced = gzip.compress(json.dumps(items, indent=2).encode())
    assert list(archive.unpack_items(spaced)) == items
    for broken in ('{"a": 1}', "[1 2]", "[1,"):
        with pytest.raises(ValueError):
            list(archive.unpack_items(gzip.compress(broken.encode())))


def test_open_calls_read_from_a_chunk_item_by_item_take_less_memory() -> None:
    payload = archive.pack([map_item(i) for i in range(2_000)])
    peaks = []
    for read in (archive.unpack, archive.unpack_items):
        tracemalloc.start()
        try:
            archive.OpenCalls().apply(read(payload))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    whole, one_by_one = peaks
    assert one_by_one < whole * 0.8


def test_one_item_larger_than_a_chunk_is_a_clear_error() -> None:
    blob = f"{random.Random(2).getrandbits(80_000):x}"
    with pytest.raises(archive.TooLargeError, match="output_storage"):
        archive.split([{"blob": blob}], limit=1024)


def test_a_configmap_reads_back_and_a_changed_one_is_refused() -> None:
    run = {"metadata": {"name": "r", "namespace": "ns", "uid": "u1"}}
    cm = archive.configmap(run, "r-history-0", archive.HISTORY, archive.pack([1, 2]))
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert archive.read_payload(cm) == [1, 2]
    cm["metadata"]["resourceVersion"] = "5"
    item = archive.entry(cm, 2)
    archive.check_entry(cm, item)
    cm["metadata"]["resourceVersion"] = "6"
    with pytest.raises(ValueError, match="changed after it was archived"):
        archive.check_entry(cm, item)


def test_open_calls_follow_starts_and_outcomes_across_chunks() -> None:
    calls = archive.OpenCalls().apply([started("a#0"), started("b#0"), completed("a#0")])
    later = calls.copy().apply([completed("b#0"), started("c#0")])
    assert list(calls) == ["b#0"]
    assert list(later) == ["c#0"]
    assert later.events == 5


def map_item(i: int) -> dict[str, Any]:
    return {
        "id": 2 + i,
        "type": "TASK_STARTED",
        "sourceId": f"p#{i}",
        "name": "p",
        "time": f"2026-01-01T12:00:{i % 60:02d}.123456+00:00",
        "value": {
            "args": [i],
            "kwargs": {"scale": i / 2},
            "task": "m:p",
            "policy": {"retry_max_attempts": 2, "retry_delay": 1.0, "timeout": 5.0},
            "secrets": ["API_KEY"],
            "batch": {"group": "p#0", "size": 100},
        },
    }


def sleep(call_id: str, until: str) -> dict[str, Any]:
    return {
        "type": "TASK_STARTED",
        "sourceId": call_id,
        "name": "sleep",
        "value": {"until": until, "seconds": 60},
    }


def test_open_calls_give_back_each_event_as_history_has_it() -> None:
    events = [map_item(i) for i in range(3)] + [sleep("sleep#0", "2026-01-02T00:00:00+00:00")]
    events.append({**started("t#0"), "id": 9})
    calls = archive.OpenCalls().apply(copy.deepcopy(events))
    assert list(calls) == ["p#0", "p#1", "p#2", "sleep#0", "t#0"]
    assert [calls.task_event(e["sourceId"]) for e in events if e["name"] != "sleep"] == [
        e for e in events if e["name"] != "sleep"
    ]
    assert calls.sleeps() == ["2026-01-02T00:00:00+00:00"]
    assert calls.task_count() == 4 and calls.is_task("p#1") and not calls.is_task("sleep#0")
    # A map's items share one shape: per call only its own fields and arguments are kept.
    shapes = {t.call_id: t.shape for t in calls.tasks()}
    assert shapes["p#0"] is shapes["p#2"] and shapes["p#0"] != shapes["t#0"]
    assert (shapes["p#0"].group, shapes["p#0"].size, shapes["p#0"].secrets) == (
        "p#0",
        100,
        ("API_KEY",),
    )
    assert [t.call_id for t in calls.tasks([shapes["p#0"].key])] == ["p#0", "p#1", "p#2"]
    calls.task_event("p#0")["value"]["args"].append("changed")
    assert calls.task_event("p#0") == events[0], "each decoded event is a fresh copy"


def test_an_open_call_costs_its_arguments_not_a_decoded_event() -> None:
    events = json.dumps([map_item(i) for i in range(5_000)])
    tracemalloc.start()
    try:
        calls = archive.OpenCalls().apply(json.loads(events))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert calls.task_count() == 5_000
    # As decoded dicts these events take about 1.8 KB each.
    assert held / 5_000 < 600


def test_a_layer_changes_while_what_it_is_layered_on_stays() -> None:
    base = archive.OpenCalls().apply(
        [started("a#0"), started("b#0"), sleep("sleep#0", "2026-01-02T00:00:00+00:00")]
    )
    layer = base.layer().apply(
        [completed("a#0"), started("c#0"), completed("sleep#0"), started("d#0")]
    )
    layer.apply([completed("d#0")])
    assert list(layer) == ["b#0", "c#0"] and layer.task_count() == 2 and layer.sleeps() == []
    assert "a#0" not in layer and "b#0" in layer and "c#0" in layer
    assert list(base) == ["a#0", "b#0", "sleep#0"] and base.task_count() == 2
    assert layer.events == base.events + 5
    assert [t.position for t in layer.tasks()] == sorted(t.position for t in layer.tasks())
    assert layer.task_event("c#0") == started("c#0")
    flat = layer.copy()
    assert list(flat) == ["b#0", "c#0"] and flat.task_count() == 2
    flat.apply([completed("b#0")])
    assert list(layer) == ["b#0", "c#0"]


def test_the_cache_reads_each_chunk_once_and_layers_the_inline_history(kube: FakeKube) -> None:
    run = {"metadata": {"name": "r", "namespace": "ns", "uid": "u"}, "status": {}}
    reads: list[str] = []
    stored_get = kube.get

    async def get(resource: Any, namespace: str, name: str) -> dict[str, Any]:
        reads.append(name)
        return await stored_get(resource, namespace, name)

    kube.get = get  # type: ignore[method-assign]

    async def archived(index: int, events: list[dict[str, Any]]) -> dict[str, Any]:
        name = archive.chunk_name("r", archive.HISTORY, index)
        cm = archive.configmap(run, name, archive.HISTORY, archive.pack(events))
        return archive.entry(await create_or_replace(kube, CONFIGMAPS, cm), len(events))

    async def scenario() -> None:
        cache = runstore.OpenCallsCache(kube)
        first = await archived(0, [started("a#0"), started("b#0")])
        run["status"] = {"historyArchive": [first], "history": [completed("a#0")]}
        one = await cache.open_calls(run)
        run["status"]["history"] = [completed("a#0"), started("c#0")]
        two = await cache.open_calls(run)
        assert list(one) == ["b#0"] and list(two) == ["b#0", "c#0"]
        assert reads == [first["configMap"]]
        second = await archived(1, [completed("a#0"), started("c#0")])
        run["status"] = {"historyArchive": [first, second], "history": [completed("b#0")]}
        three = await cache.open_calls(run)
        assert list(three) == ["c#0"] and list(two) == ["b#0", "c#0"]
        assert reads == [first["configMap"], second["configMap"]]

    asyncio.run(scenario())


def test_record_ops_touch_only_changed_records() -> None:
    current = [{"callId": "a", "state": "Running"}, {"callId": "b", "state": "Running"}]
    wanted = [{"callId": "b", "state": "Completed", "output": None}, {"callId": "c", "x": 1}]
    ops = task_record_ops(current, wanted)
    assert ops == [
        {"op": "remove", "path": "/status/tasks/0"},
        {"op": "test", "path": "/status/tasks/0/callId", "value": "b"},
        {
            "op": "replace",
            "path": "/status/tasks/0",
            "value": {"callId": "b", "state": "Completed"},
        },
        {"op": "add", "path": "/status/tasks/-", "value": {"callId": "c", "x": 1}},
    ]
    assert task_record_ops(current, copy.deepcopy(current)) == []


def _run_with(history: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"workflowRef": {"name": "wf"}},
        "status": {"phase": "Running", "history": history, "tasks": records},
    }


WORKFLOW = {
    "metadata": {"name": "wf", "namespace": "ns", "generation": 1, "uid": "w"},
    "spec": {"entrypoint": "m:wf"},
    "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]},
}


def test_settled_records_move_out_once_there_are_enough() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = [f"t#{i}" for i in range(archive.INLINE_SETTLED_RECORDS + 1)]
    history = [{"type": "WORKFLOW_STARTED", "sourceId": "r", "name": "wf"}]
    history += [started(c) for c in ids] + [completed(c) for c in ids[:-1]]
    records = [{"callId": c, "name": "t", "state": "Completed"} for c in ids[:-1]]
    records.append({"callId": ids[-1], "name": "t", "state": "Running", "pod": "p"})
    pod = {
        "metadata": {"name": "p", "labels": {"flux.dev/role": "task"}},
        "status": {"phase": "Running"},
    }
    plan = plan_run(Observed(_run_with(history, records), WORKFLOW, [pod], now), OperatorConfig())
    assert [r["callId"] for r in plan.archive_tasks] == ids[:-1]
    assert [r["callId"] for r in plan.status["tasks"]] == [ids[-1]]

    few = records[:3] + records[-1:]
    plan = plan_run(Observed(_run_with(history, few), WORKFLOW, [pod], now), OperatorConfig())
    assert plan.archive_tasks == []


def test_open_calls_given_by_the_operator_replace_the_inline_history() -> None:
    """With the history archived, the operator passes the open calls it read."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    run = _run_with([], [])
    run["status"]["historyArchive"] = [{"configMap": "c", "count": 2, "resourceVersion": "1"}]
    open_calls = archive.OpenCalls().apply([{"type": "WORKFLOW_STARTED"}, started("t#0")])
    plan = plan_run(Observed(run, WORKFLOW, [], now, open_calls=open_calls), OperatorConfig())
    assert [r["callId"] for r in plan.status["tasks"]] == ["t#0"]
    assert len([p for p in plan.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]) == 1


@task
def big(i: int) -> str:
    return "x" * 20_000


@workflow
async def many_big(ctx: WorkflowExecutionContext[int]) -> list[str]:
    return [await big(i) for i in range(ctx.input)]


def _clock() -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_driver_seals_history_into_chunks_and_stores_a_large_output(
    kube: DriverKube, runs: Runs
) -> None:
    runs.new(8)
    driver = Driver(kube, "ns", "r1", many_big)

    async def scenario() -> None:
        instance = WorkflowInstance(many_big, "r1", [], clock=_clock, rng=random.Random(0), input=8)
        instance.start()
        while True:
            body = runs.body()
            await driver._load_values(body.get("status") or {})
            driver.observe(instance, body.get("status") or {})
            await driver.publish(instance, body)
            if instance.state.is_final:
                return
            _complete_big(kube, runs, instance.in_flight())

    asyncio.run(scenario())
    status = runs.status()
    assert status["phase"] == "Succeeded"
    assert status["historyArchive"], "the history outgrew its inline budget"
    assert "output" not in status
    assert kube.stored(CONFIGMAPS, "ns", status["outputRef"]["configMap"]) is not None
    assert len(json.dumps(runs.body())) < archive.RUN_BUDGET

    async def read_back() -> tuple[list[dict[str, Any]], Any]:
        history = await runstore.load_history(kube, "ns", status)
        output = await runstore.load_output(kube, "ns", status)
        return history, output

    history, output = asyncio.run(read_back())
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert history[-1]["type"] == "WORKFLOW_COMPLETED"
    assert output == ["x" * 20_000] * 8


def _complete_big(kube: FakeKube, runs: Runs, in_flight: Any) -> None:
    """Play the operator for ``big``, giving large outputs by reference as it does."""
    body = runs.body()
    records = body["status"].setdefault("tasks", [])
    known = {r["callId"] for r in records}
    for call_id in in_flight:
        if call_id in known:
            continue
        name = archive.value_name("r1", call_id)
        stored = kube.put(
            CONFIGMAPS, archive.configmap(body, name, archive.VALUE, archive.pack("x" * 20_000))
        )
        version = stored["metadata"]["resourceVersion"]
        ref = {"configMap": name, "count": 1, "resourceVersion": version}
        records.append({"callId": call_id, "name": "big", "state": "Completed", "outputRef": ref})
    runs.set_status(tasks=records)

"""The Kubernetes client seam: typed errors, the in-memory API server, the watch helper."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flux.k8s.kube import (
    CONFIGMAPS,
    RUNS,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    JsonPatch,
    KubeError,
    NotFound,
    PatchTestFailed,
)
from flux.k8s.kube.fake import FakeKube
from flux.k8s.kube.patch import pointer
from flux.k8s.kube.rest import _path, error_from_response
from flux.k8s.kube.watch import Listed, follow


def run(name: str = "r1", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"workflowRef": {"name": "wf"}}}
    if status:
        body["status"] = status
    return body


def go(coro: Any) -> Any:
    return asyncio.run(coro)


def test_names_are_taken_once_and_missing_ones_are_not_found() -> None:
    kube = FakeKube()
    created = go(kube.create(RUNS, "ns", run()))
    assert created["metadata"]["resourceVersion"] == "1"
    with pytest.raises(Conflict):
        go(kube.create(RUNS, "ns", run()))
    with pytest.raises(NotFound):
        go(kube.get(RUNS, "ns", "other"))
    with pytest.raises(NotFound):
        go(kube.delete(RUNS, "ns", "other"))


def test_a_failed_json_patch_test_changes_nothing() -> None:
    kube = FakeKube()
    go(kube.create(RUNS, "ns", run()))
    go(kube.patch(RUNS, "ns", "r1", {"status": {"phase": "Running"}}, status=True))
    stale = JsonPatch().test("/status/phase", "Pending").add("/status/phase", "Failed")
    with pytest.raises(PatchTestFailed):
        go(kube.patch(RUNS, "ns", "r1", stale, status=True))
    assert go(kube.get(RUNS, "ns", "r1"))["status"] == {"phase": "Running"}
    with pytest.raises(Invalid):
        go(kube.patch(RUNS, "ns", "r1", JsonPatch().remove("/status/nothing"), status=True))


def test_status_and_the_rest_are_written_apart() -> None:
    kube = FakeKube()
    go(kube.create(RUNS, "ns", run()))
    written = go(
        kube.patch(
            RUNS, "ns", "r1", {"status": {"phase": "Running"}, "spec": {"x": 1}}, status=True
        )
    )
    assert written["status"] == {"phase": "Running"} and "x" not in written["spec"]
    assert written["metadata"]["generation"] == 1
    written = go(kube.patch(RUNS, "ns", "r1", {"spec": {"x": 1}, "status": {"phase": "Failed"}}))
    assert written["spec"]["x"] == 1 and written["status"] == {"phase": "Running"}
    assert written["metadata"]["generation"] == 2


def test_a_merge_patch_null_removes_and_a_json_patch_keeps_nulls() -> None:
    kube = FakeKube()
    go(kube.create(CONFIGMAPS, "ns", {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}))
    written = go(kube.patch(CONFIGMAPS, "ns", "c", {"data": {"a": None}}))
    assert written["data"] == {"b": "2"}
    written = go(kube.patch(CONFIGMAPS, "ns", "c", JsonPatch().add("/extra", {"v": None})))
    assert written["extra"] == {"v": None}


def test_replace_refuses_a_stale_resource_version() -> None:
    kube = FakeKube()
    first = go(kube.create(CONFIGMAPS, "ns", {"metadata": {"name": "c"}, "data": {}}))
    go(kube.replace(CONFIGMAPS, "ns", "c", {**first, "data": {"a": "1"}}))
    with pytest.raises(Conflict):
        go(kube.replace(CONFIGMAPS, "ns", "c", {**first, "data": {"a": "2"}}))


def test_selectors_pick_objects() -> None:
    kube = FakeKube()
    go(kube.create(RUNS, "ns", run("a")))
    other = run("b")
    other["spec"]["workflowRef"]["name"] = "other"
    other["metadata"]["labels"] = {"k": "v"}
    go(kube.create(RUNS, "ns", other))
    by_field = go(kube.list(RUNS, "ns", field_selector="spec.workflowRef.name=wf"))
    assert [r["metadata"]["name"] for r in by_field["items"]] == ["a"]
    by_label = go(kube.list(RUNS, "ns", label_selector="k=v"))
    assert [r["metadata"]["name"] for r in by_label["items"]] == ["b"]
    assert go(kube.list(RUNS, "elsewhere"))["items"] == []


def test_injected_faults_are_raised_then_spent() -> None:
    kube = FakeKube()
    kube.fail("create", RUNS, Forbidden("quota"))
    with pytest.raises(Forbidden):
        go(kube.create(RUNS, "ns", run()))
    go(kube.create(RUNS, "ns", run()))
    assert kube.count("create", RUNS) == 2


def test_a_watch_replays_from_a_version_and_answers_gone_once_it_is_forgotten() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        created = await kube.create(RUNS, "ns", run())
        await kube.patch(RUNS, "ns", "r1", {"status": {"phase": "Running"}}, status=True)
        seen = [
            (e["type"], e["object"].get("status"))
            async for e in kube.watch(
                RUNS,
                "ns",
                resource_version=created["metadata"]["resourceVersion"],
                timeout_seconds=0,
            )
        ]
        assert seen == [("MODIFIED", {"phase": "Running"})]
        kube.forget_changes()
        with pytest.raises(Gone):
            async for _ in kube.watch(RUNS, "ns", resource_version="1", timeout_seconds=0):
                pass

    go(scenario())


def test_follow_lists_again_after_gone_and_sees_later_changes() -> None:
    async def scenario() -> list[Any]:
        kube = FakeKube()
        await kube.create(RUNS, "ns", run("a"))
        seen: list[Any] = []
        stream = follow(kube, RUNS, "ns", since="0")
        kube.forget_changes()  # what "since" names is gone: a relist shows "a"

        async def later() -> None:
            await asyncio.sleep(0.01)
            await kube.create(RUNS, "ns", run("b"))

        writer = asyncio.create_task(later())
        async for change in stream:
            seen.append(change)
            if len(seen) == 2:
                break
        await writer
        return seen

    first, second = go(scenario())
    assert isinstance(first, Listed) and [i["metadata"]["name"] for i in first.items] == ["a"]
    assert not isinstance(second, Listed)
    assert second["type"] == "ADDED" and second["object"]["metadata"]["name"] == "b"


def test_responses_become_typed_errors_with_the_server_s_message() -> None:
    status = {"kind": "Status", "message": 'pods "p" already exists', "code": 409}
    error = error_from_response(409, "Conflict", json.dumps(status).encode())
    assert isinstance(error, Conflict) and error.message == 'pods "p" already exists'
    assert str(error) == '409 Conflict: pods "p" already exists'
    failed_test = {"message": "the server rejected our request: testing value /status/phase failed"}
    assert isinstance(error_from_response(422, "", json.dumps(failed_test)), PatchTestFailed)
    assert type(error_from_response(422, "", '{"message": "spec.x: Invalid value"}')) is Invalid
    assert isinstance(error_from_response(403, "Forbidden", None), Forbidden)
    assert type(error_from_response(500, "Internal", "oops")) is KubeError


def test_paths_name_core_and_custom_resources_and_escape_names() -> None:
    assert _path(RUNS, "ns", "r1") == "/apis/flux.dev/v1alpha1/namespaces/ns/workflowruns/r1"
    assert _path(CONFIGMAPS, None) == "/api/v1/configmaps"
    assert _path(CONFIGMAPS, "ns", "a/b") == "/api/v1/namespaces/ns/configmaps/a%2Fb"
    assert pointer("status", "tasks", 0, "a/b~c") == "/status/tasks/0/a~1b~0c"


def test_events_name_the_object_and_a_refused_one_is_only_logged() -> None:
    from flux.k8s.kube import EVENTS
    from flux.k8s.kube.events import EventRecorder

    kube = FakeKube()
    body = go(kube.create(RUNS, "ns", run()))
    recorder = EventRecorder(kube, "flux-driver")
    go(recorder.post(body, "Warning", "ResumeRefused", "x" * 5000))
    (event,) = kube.all(EVENTS, "ns")
    assert (
        event["involvedObject"]["name"] == "r1" and event["involvedObject"]["kind"] == "WorkflowRun"
    )
    assert event["reason"] == "ResumeRefused" and len(event["message"]) == 1024
    kube.fail("create", EVENTS, Forbidden("no"))
    go(recorder.post(body, "Normal", "Succeeded", "done"))  # logged, not raised
    assert len(kube.all(EVENTS, "ns")) == 1

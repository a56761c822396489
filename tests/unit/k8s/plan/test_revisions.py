"""Code revisions: what a run records at its start, and what its pods then use (pure)."""

from __future__ import annotations

from typing import Any

from flux.k8s import revisions
from flux.k8s.pods import source_configmap_name
from flux.k8s.reconcile import Observed, plan_run
from flux.k8s.revisions import Revision, workflow_revision
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, run, started, workflow

SOURCE = "def f(x):\n    return x\n"
EDITED = "def f(x):\n    return 2 * x\n"


def inline(source: str = SOURCE, function: str = "f", **spec: Any) -> dict[str, Any]:
    return workflow(source=source, function=function, **spec)


def revision_of(wf: dict[str, Any]) -> Revision:
    return workflow_revision(wf["spec"], wf["spec"].get("image") or CONFIG.default_image)


def configmap(wf: dict[str, Any], workflow_name: str = "wf") -> dict[str, Any]:
    """A revision's ConfigMap as the operator writes it (flux.k8s.operator.workflows)."""
    revision = revision_of(wf)
    return {
        "metadata": {
            "name": source_configmap_name(workflow_name, revision.name),
            "labels": revisions.configmap_labels(workflow_name, revision.name),
        },
        "data": revisions.configmap_data(revision),
    }


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


def source_volume(pod: dict[str, Any]) -> str:
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "source"]
    assert volume["configMap"]["items"] == [{"key": "flux_workflow.py", "path": "flux_workflow.py"}]
    return str(volume["configMap"]["name"])


def test_a_revision_is_a_hash_of_everything_that_decides_the_code() -> None:
    base = revision_of(inline())
    assert revisions.valid_name(base.name)
    assert base == revision_of(inline())  # the same spec, the same revision
    assert base.inline and base.entrypoint == "flux_workflow:f"
    others = [
        revision_of(inline(EDITED)),
        revision_of(inline(function="g", source=SOURCE + "g = f\n")),
        revision_of(inline(function="g")),
        revision_of(inline(image="other:1")),
    ]
    assert len({base.name, *(r.name for r in others)}) == 5
    image = revision_of(workflow(entrypoint="examples.hello:hello", image="app:1"))
    assert not image.inline and (image.image, image.entrypoint) == ("app:1", "examples.hello:hello")
    moved = revision_of(workflow(entrypoint="examples.hello:hello", image="app:2"))
    assert moved.name != image.name


def test_a_configmap_holds_its_revision_only_if_it_is_the_workflows_and_hashes_to_it() -> None:
    wf = inline()
    assert revisions.from_configmap(configmap(wf), "wf") == revision_of(wf)
    assert revisions.from_configmap(configmap(wf, "other"), "wf") is None
    tampered = configmap(wf)
    tampered["data"]["flux_workflow.py"] = EDITED  # content no longer hashes to the name
    assert revisions.from_configmap(tampered, "wf") is None
    assert revisions.from_configmap({"metadata": {}, "data": {}}, "wf") is None


def test_a_new_run_records_the_workflows_current_revision_and_its_pods_use_it() -> None:
    wf = inline()
    result = plan_run(Observed(run(), wf, [], NOW), CONFIG)
    expected = revision_of(wf)
    assert result.status["revision"] == expected.name
    assert result.status["entrypoint"] == "flux_workflow:f"
    assert result.status["image"] == CONFIG.default_image
    (driver,) = result.create
    assert source_volume(driver) == source_configmap_name("wf", expected.name)
    assert env_of(driver)["FLUX_REVISION"] == expected.name


def test_a_run_keeps_its_revision_after_the_workflow_is_edited() -> None:
    old = inline()
    status = {
        "phase": "Running",
        "history": [WF_STARTED],
        **revisions.pinned_status(revision_of(old)),
    }
    edited = inline(EDITED, function="g", image="new:2")
    observed = Observed(run(status), edited, [], NOW, revision_configmap=configmap(old))
    result = plan_run(observed, CONFIG)
    assert "revision" not in result.status and "phase" not in result.status
    (driver,) = result.create  # restarted: the history is replayed on the old code
    assert source_volume(driver) == source_configmap_name("wf", revision_of(old).name)
    assert env_of(driver)["FLUX_WORKFLOW"] == "flux_workflow:f"
    assert driver["spec"]["containers"][0]["image"] == CONFIG.default_image


def test_a_run_whose_recorded_revision_is_not_its_workflows_fails() -> None:
    foreign = inline(EDITED)
    status = {"phase": "Running", **revisions.pinned_status(revision_of(foreign))}
    cases = [
        None,  # no such ConfigMap
        configmap(foreign, workflow_name="other"),  # another Workflow's
    ]
    for found in cases:
        observed = Observed(run(status), inline(), [], NOW, revision_configmap=found)
        result = plan_run(observed, CONFIG)
        assert result.status["phase"] == "Failed" and result.create == []
        assert result.status["error"]["type"] == "RevisionInvalid"
        assert "status.revision" in result.status["error"]["message"]
        assert [e[1] for e in result.events] == ["RevisionInvalid"]
    # Only part of the record (the image patched away, say): the same.
    partial = {"phase": "Running", "revision": revision_of(inline()).name}
    result = plan_run(Observed(run(partial), inline(), [], NOW), CONFIG)
    assert result.status["error"]["type"] == "RevisionInvalid"


def test_a_run_whose_image_is_patched_fails_rather_than_run_it() -> None:
    wf = workflow(entrypoint="examples.hello:hello", image="app:1")
    hostile = Revision(revision_of(wf).name, "examples.hello:hello", "evil:1")
    status = {"phase": "Running", **revisions.pinned_status(hostile)}
    result = plan_run(Observed(run(status), wf, [], NOW), CONFIG)
    assert result.status["error"]["type"] == "RevisionInvalid"


def test_the_image_digest_is_recorded_once_a_pod_reports_it() -> None:
    wf = workflow(entrypoint="examples.hello:hello", image="app:1")
    status = {
        "phase": "Running",
        "history": [WF_STARTED],
        **revisions.pinned_status(revision_of(wf)),
    }
    digest = "docker.io/library/app@sha256:" + "a" * 64
    reporting = {
        "metadata": {"name": "r1-driver-1", "labels": {"flux.dev/role": "driver"}},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "driver", "image": "app:1", "imageID": digest}],
        },
    }
    result = plan_run(Observed(run(status), wf, [reporting], NOW), CONFIG)
    assert result.status["imageDigest"] == digest
    recorded = {**status, "imageDigest": digest}
    result = plan_run(Observed(run(recorded), wf, [reporting], NOW), CONFIG)
    assert "imageDigest" not in result.status
    # Not reported yet (kwok's nodes never do): nothing is waited for.
    waiting = {**reporting, "status": {"phase": "Pending"}}
    assert "imageDigest" not in plan_run(Observed(run(status), wf, [waiting], NOW), CONFIG).status


def test_unused_revisions_are_those_neither_current_nor_recorded() -> None:
    found = {"cm-a": "a" * 12, "cm-b": "b" * 12, "cm-c": "c" * 12}
    assert revisions.unused(found, "a" * 12, {"b" * 12}) == ["cm-c"]
    assert revisions.unused(found, None, set()) == ["cm-a", "cm-b", "cm-c"]


def test_a_task_may_still_name_the_image_its_run_started_with_after_an_image_edit() -> None:
    old = workflow(entrypoint="examples.hello:hello", image="team/app:7")
    call = started("say#0")
    call["value"]["pod"] = {"image": "team/app:7"}
    call["value"]["secrets"] = []
    status = {
        "phase": "Running",
        "history": [WF_STARTED, call],
        "driver": {"starts": 1, "pod": "d"},
        **revisions.pinned_status(revision_of(old)),
    }
    edited = workflow(entrypoint="examples.hello:hello", image="team/app:8")
    observed = Observed(run(status), edited, [], NOW, revision_configmap=configmap(old))
    result = plan_run(observed, CONFIG)
    tasks = [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    assert [p["spec"]["containers"][0]["image"] for p in tasks] == ["team/app:7"]
    assert "phase" not in result.status

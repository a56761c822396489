"""What the ``flux kube`` commands do on the cluster, through the
:class:`~flux.k8s.kube.Kube` seam: ship a Workflow, create, follow, resume,
cancel, retry and delete runs, list them.

Each request is one the user could make with kubectl (the commands document
theirs); nothing here decides for the operator.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from flux.events import ExecutionEvent
from flux.k8s import archive, runstore
from flux.k8s.history import event_from_status
from flux.k8s.inspect import RunNotFoundError, get_run
from flux.k8s.kube import CONFIGMAPS, RUNS, WORKFLOWS, Conflict, Kube, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.kube.watch import Listed, follow
from flux.k8s.pods import owner_reference
from flux.k8s.states import FINAL_PHASES, Phase
from flux.local.kube_source import InlineWorkflow

# Created by `flux kube run`: a Workflow without it is someone else's, never rewritten.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "flux-cli"
_RETRY_SUFFIX = re.compile(r"-retry-\d+$")
# Names of runs, as of other objects, are DNS subdomains; their labels 63 characters.
MAX_RUN_NAME = 63
# An input larger than this, encoded, goes to a ConfigMap of its own (spec.inputFrom),
# as a large task output does: the run stays within its size budget.
INLINE_INPUT_BYTES = archive.INLINE_VALUE_BYTES
INPUT_KEY = "input.json"


class RequestRefused(Exception):
    """What was asked cannot be done to the run as it is; the message says why."""


# ---------------------------------------------------------------- submitting


async def apply_workflow(kube: Kube, namespace: str, shipped: InlineWorkflow) -> str:
    """Create the Workflow, or give the one an earlier ``flux kube run`` made the
    new source; returns "created", "updated" or "unchanged"."""
    try:
        held = await kube.get(WORKFLOWS, namespace, shipped.name)
    except NotFound:
        await kube.create(WORKFLOWS, namespace, workflow_manifest(shipped))
        return "created"
    labels = (held.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER:
        raise RequestRefused(
            f"Workflow {namespace}/{shipped.name} exists and was not made by flux kube run; "
            "it is left as it is (delete it, or run from another file name)"
        )
    spec = held.get("spec") or {}
    if spec.get("source") == shipped.source and spec.get("function") == shipped.function:
        return "unchanged"
    # A merge patch: the image, secrets and pod settings set with kubectl stay.
    patch = {"spec": {"source": shipped.source, "function": shipped.function, "entrypoint": None}}
    await kube.patch(WORKFLOWS, namespace, shipped.name, patch)
    return "updated"


async def unfinished_runs(kube: Kube, namespace: str, workflow: str) -> list[str]:
    """Runs of ``workflow`` that have not ended (on the revision each recorded)."""
    return [
        run["metadata"]["name"]
        for run in await list_runs(kube, namespace)
        if ((run.get("spec") or {}).get("workflowRef") or {}).get("name") == workflow
        and phase_of(run) not in FINAL_PHASES
    ]


def workflow_manifest(shipped: InlineWorkflow) -> Body:
    return {
        "apiVersion": WORKFLOWS.api_version,
        "kind": WORKFLOWS.kind,
        "metadata": {"name": shipped.name, "labels": {MANAGED_BY: MANAGER}},
        "spec": {"source": shipped.source, "function": shipped.function},
    }


def run_manifest(workflow: str, input: Any, *, name: str | None = None) -> Body:
    """A WorkflowRun of ``workflow``; named ``<workflow>-xxxxx`` by the API server
    unless ``name`` is given."""
    spec: Body = {"workflowRef": {"name": workflow}}
    if input is not None:
        spec["input"] = input
    meta: Body = {"name": name} if name else {"generateName": f"{workflow}-"}
    return {"apiVersion": RUNS.api_version, "kind": RUNS.kind, "metadata": meta, "spec": spec}


async def create_run(kube: Kube, namespace: str, workflow: str, input: Any) -> str:
    """A new run of ``workflow``; an input over :data:`INLINE_INPUT_BYTES` is kept in
    a ConfigMap the run owns (``spec.inputFrom``)."""
    text = None if input is None else json.dumps(input, ensure_ascii=False, separators=(",", ":"))
    if text is None or len(text.encode()) <= INLINE_INPUT_BYTES:
        created = await kube.create(RUNS, namespace, run_manifest(workflow, input))
        name: str = created["metadata"]["name"]
        return name
    holder = await kube.create(CONFIGMAPS, namespace, input_configmap(workflow, text))
    configmap = holder["metadata"]["name"]
    body = run_manifest(workflow, None)
    body["spec"]["inputFrom"] = {"configMapKeyRef": {"name": configmap, "key": INPUT_KEY}}
    try:
        created = await kube.create(RUNS, namespace, body)
    except BaseException:
        await kube.delete(CONFIGMAPS, namespace, configmap)
        raise
    await add_owner(kube, namespace, configmap, created)
    name = created["metadata"]["name"]
    return name


def input_configmap(workflow: str, text: str) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": f"{workflow}-input-", "labels": {MANAGED_BY: MANAGER}},
        "data": {INPUT_KEY: text},
    }


async def add_owner(kube: Kube, namespace: str, configmap: str, run: Body) -> None:
    """Make ``run`` one more owner of the input ``configmap``: it is deleted with
    the last run that reads it (a run and its retries share it)."""
    held = await kube.get(CONFIGMAPS, namespace, configmap)
    meta = held["metadata"]
    # Not the controller, and not blocking deletion (that needs rights on the run's
    # finalizers): only so that the garbage collector deletes it after its runs.
    ref = {
        k: v for k, v in owner_reference(run).items() if k in ("apiVersion", "kind", "name", "uid")
    }
    owners = [*(meta.get("ownerReferences") or []), ref]
    # resourceVersion: a merge patch of a list replaces it, so no owner added meanwhile is lost.
    patch = {"metadata": {"ownerReferences": owners, "resourceVersion": meta["resourceVersion"]}}
    await kube.patch(CONFIGMAPS, namespace, configmap, patch)


# ------------------------------------------------------------ changing a run


async def request_resume(kube: Kube, namespace: str, name: str, input: Any) -> None:
    """Set ``status.resume`` of a Paused run, as
    ``kubectl patch fxrun NAME --subresource=status --type=merge`` does."""
    run = await get_run(kube, namespace, name)
    phase = phase_of(run)
    if phase != Phase.PAUSED:
        raise RequestRefused(f"run {name} is {phase}, not Paused: there is nothing to resume")
    await kube.patch(RUNS, namespace, name, {"status": {"resume": {"input": input}}}, status=True)


async def request_cancel(kube: Kube, namespace: str, name: str) -> None:
    """Set ``spec.cancel: true`` on an unfinished run (a merge patch); the operator
    stops its tasks in flight and runs their rollbacks."""
    run = await get_run(kube, namespace, name)
    phase = phase_of(run)
    if phase in FINAL_PHASES:
        raise RequestRefused(f"run {name} has already finished ({phase}); nothing to cancel")
    patched = await kube.patch(RUNS, namespace, name, {"spec": {"cancel": True}})
    if (patched.get("spec") or {}).get("cancel") is not True:
        # The API server prunes a field its CRD does not declare.
        raise RequestRefused(
            "the cluster's WorkflowRun CRD has no spec.cancel, so the request was dropped: "
            "install the CRDs of this version of Flux"
        )


async def retry_run(kube: Kube, namespace: str, name: str) -> str:
    """A new run with the spec of ``name`` (its Workflow and input), named
    ``<run>-retry-<n>``; returns its name."""
    run = await get_run(kube, namespace, name)
    spec = {k: v for k, v in (run.get("spec") or {}).items() if k != "cancel"}
    base = _RETRY_SUFFIX.sub("", name)
    listed = await kube.list(RUNS, namespace)
    taken = {item["metadata"]["name"] for item in listed.get("items") or []}
    number = next_retry_number(base, taken)
    while True:
        new_name = retry_name(base, number)
        body = {**run_manifest("", None, name=new_name), "spec": spec}
        try:
            created = await kube.create(RUNS, namespace, body)
        except Conflict:
            number += 1  # made meanwhile by someone else
            continue
        await _share_input(kube, namespace, spec, created)
        return new_name


async def _share_input(kube: Kube, namespace: str, spec: Body, run: Body) -> None:
    """A retry reads the input ConfigMap ``flux kube run`` made: it owns it too."""
    configmap = ((spec.get("inputFrom") or {}).get("configMapKeyRef") or {}).get("name")
    if not configmap:
        return
    try:
        held = await kube.get(CONFIGMAPS, namespace, configmap)
    except NotFound:
        return  # the retry fails with the same error as a run would
    if ((held.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == MANAGER:
        await add_owner(kube, namespace, configmap, run)


def next_retry_number(base: str, taken: set[str]) -> int:
    numbers = [
        int(name.rpartition("-")[2])
        for name in taken
        if name.startswith(base) and _RETRY_SUFFIX.fullmatch(name[len(base) :])
    ]
    return max(numbers, default=0) + 1


def retry_name(base: str, number: int) -> str:
    suffix = f"-retry-{number}"
    return base[: MAX_RUN_NAME - len(suffix)].rstrip("-") + suffix


async def delete_run(kube: Kube, namespace: str, name: str) -> None:
    """Delete the run; its pods and ConfigMaps, which it owns, go with it."""
    try:
        await kube.delete(RUNS, namespace, name)
    except NotFound:
        raise RunNotFoundError(
            f"WorkflowRun {name!r} not found in namespace {namespace!r}"
        ) from None


# ---------------------------------------------------------------- following


def phase_of(run: Body) -> str:
    return str((run.get("status") or {}).get("phase") or Phase.PENDING)


def settled(run: Body) -> bool:
    """Whether the run has ended, or waits at a pause with no resume pending."""
    status = run.get("status") or {}
    phase = phase_of(run)
    return phase in FINAL_PHASES or (phase == Phase.PAUSED and status.get("resume") is None)


@dataclass
class HistoryReader:
    """The events of a run's history not yet seen, from each new state of the run;
    the archive is read only when events were moved there unseen."""

    kube: Kube
    namespace: str
    seen: int = 0
    _pending: list[ExecutionEvent] = field(default_factory=list)

    async def new_events(self, run: Body) -> list[ExecutionEvent]:
        status = run.get("status") or {}
        inline = status.get("history") or []
        first = int(inline[0].get("id", 0)) if inline else self.seen + 1
        if first > self.seen + 1 and status.get("historyArchive"):
            events = await runstore.load_history(self.kube, self.namespace, status)
        else:
            events = inline
        fresh = [event_from_status(e) for e in events if int(e.get("id", 0)) > self.seen]
        if fresh:
            self.seen = max(e.id for e in fresh)
        return fresh


async def follow_run(kube: Kube, namespace: str, name: str) -> AsyncIterator[Body]:
    """Each state of the run from now on, the current one first."""
    selector = f"metadata.name={name}"
    async for change in follow(kube, RUNS, namespace, field_selector=selector):
        if isinstance(change, Listed):
            if not change.items:
                raise RunNotFoundError(f"WorkflowRun {name!r} not found in namespace {namespace!r}")
            yield change.items[0]
        elif change["type"] == "DELETED":
            raise RunNotFoundError(f"WorkflowRun {namespace}/{name} was deleted")
        else:
            yield change["object"]


async def watch_run(
    kube: Kube,
    namespace: str,
    name: str,
    observe: Callable[[list[ExecutionEvent]], None],
    *,
    seen: int = 0,
) -> Body:
    """Follow the run until it settles (:func:`settled`), telling ``observe`` every
    history event after ``seen``; returns the run as it settled."""
    reader = HistoryReader(kube, namespace, seen)
    async for run in follow_run(kube, namespace, name):
        events = await reader.new_events(run)
        if events:
            observe(events)
        if settled(run):
            return run
    raise AssertionError("follow() ends only when its reader stops")  # pragma: no cover


async def output_of(kube: Kube, namespace: str, run: Body) -> Any:
    """The output of a Succeeded run, wherever it is kept."""
    return await runstore.load_output(kube, namespace, run.get("status") or {})


# ------------------------------------------------------------------- listing


async def list_runs(kube: Kube, namespace: str | None) -> list[Body]:
    listed = await kube.list(RUNS, namespace)
    return list(listed.get("items") or [])


async def list_workflows(kube: Kube, namespace: str | None) -> list[Body]:
    listed = await kube.list(WORKFLOWS, namespace)
    return list(listed.get("items") or [])

"""Workflows: their Ready and Scheduled conditions, their code revisions (an immutable
ConfigMap each, see flux.k8s.revisions) and the deletion of revisions no run uses."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from flux.k8s import metrics, revisions
from flux.k8s.bodies import as_workflow
from flux.k8s.config import OperatorConfig
from flux.k8s.decisions import condition_changed, set_condition, workflow_ready
from flux.k8s.kube import CONFIGMAPS, RUNS, WORKFLOWS, Conflict, Kube, KubeError, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.labels import LABEL_REVISION, LABEL_WORKFLOW
from flux.k8s.models import Condition, to_json
from flux.k8s.operator.background import BackgroundTasks
from flux.k8s.operator.cache import Cache
from flux.k8s.operator.events import BackgroundEvents
from flux.k8s.pods import current_revision, owner_reference, source_configmap_name
from flux.k8s.revisions import Revision
from flux.k8s.schedules import scheduled_condition
from flux.k8s.states import ConditionStatus, ConditionType, EventKind

log = logging.getLogger("flux.operator")
# Seconds after an edit before the Workflow's unused revisions are looked for: a
# pass that read the Workflow just before the edit may still be recording the
# old revision on a new run, and a pass takes well under this.
COLLECT_DELAY_SECONDS = 10.0


class Workflows:
    def __init__(
        self, kube: Kube, cache: Cache, events: BackgroundEvents, config: OperatorConfig
    ) -> None:
        self.kube = kube
        self.config = config
        # Revision ConfigMaps read for runs of older revisions, by (namespace, name).
        self._revisions: dict[tuple[str, str], Body] = {}
        self._collecting = BackgroundTasks()
        self.collect_delay = COLLECT_DELAY_SECONDS
        self.cache = cache
        self.events = events

    async def check(self, workflow: Body) -> None:
        """Set the Workflow's Ready condition; keep its inline source in a ConfigMap."""
        meta, spec = workflow["metadata"], workflow.get("spec") or {}
        metrics.workflow_seen(meta["name"])
        self.cache.workflow_seen(workflow)
        revision = current_revision(as_workflow(workflow), self.config)
        stored_status = workflow.get("status") or {}
        if stored_status.get("revision") != revision.name:
            # Its ConfigMap is created before the status says it is current.
            await self._ensure_revision(workflow, revision)
        if stored_status.get("revision") not in (None, revision.name):
            # Edited: the revision it had may be used by no run any more.
            self._collect_later(meta["namespace"], meta["name"])
        stored = [
            Condition.model_validate(c)
            for c in (workflow.get("status") or {}).get("conditions") or []
        ]
        wanted = [workflow_ready(spec, meta.get("generation"))]
        scheduled = scheduled_condition(spec.get("schedules") or [], meta.get("generation"))
        if scheduled is not None:
            wanted.append(scheduled)
        changed = [c for c in wanted if condition_changed(stored, c)]
        # Schedules all removed: their condition goes with them.
        kept = [c for c in stored if scheduled is not None or c.type != ConditionType.SCHEDULED]
        if (
            not changed
            and len(kept) == len(stored)
            and stored_status.get("revision") == revision.name
        ):
            return
        now = dt.datetime.now(dt.UTC)
        for condition in wanted:
            kept = set_condition(kept, condition, now)
        status = {
            "conditions": [to_json(c) for c in kept],
            "observedGeneration": meta.get("generation"),
            "revision": revision.name,
        }
        written = await self.kube.patch(
            WORKFLOWS, meta["namespace"], meta["name"], {"status": status}, status=True
        )
        self.cache.workflow_seen(written)
        for condition in changed:
            ok = condition.status == ConditionStatus.TRUE
            kind = EventKind.NORMAL if ok else EventKind.WARNING
            self.events.post(workflow, kind, condition.reason, condition.message)

    async def _ensure_revision(self, workflow: Body, revision: Revision) -> None:
        """Create the revision's ConfigMap unless it exists (immutable: never replaced)."""
        meta = workflow["metadata"]
        configmap: Body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": source_configmap_name(meta["name"], revision.name),
                "namespace": meta["namespace"],
                # Owned by the Workflow, not controlled: it goes with the Workflow
                # (whose runs then fail: WorkflowNotFound) or when collect() finds
                # no run using it.
                "ownerReferences": [
                    {**owner_reference(workflow), "kind": "Workflow", "controller": False}
                ],
                "labels": revisions.configmap_labels(meta["name"], revision.name),
            },
            "immutable": True,
            "data": revisions.configmap_data(revision),
        }
        with contextlib.suppress(Conflict):  # there already: same name, same content
            await self.kube.create(CONFIGMAPS, meta["namespace"], configmap)

    async def revision_configmap(self, namespace: str, workflow: str, revision: str) -> Body | None:
        """The ConfigMap of a Workflow's revision, as stored (None if there is none).

        Read once per revision and held: it is immutable, so only its deletion can
        change what a read would say, and collect() forgets it then."""
        key = (namespace, source_configmap_name(workflow, revision))
        if key not in self._revisions:
            try:
                self._revisions[key] = await self.kube.get(CONFIGMAPS, *key)
            except NotFound:
                return None
        return self._revisions[key]

    def _collect_later(self, namespace: str, workflow: str) -> None:
        """collect() once the passes that may have read the Workflow before its edit
        are done: one of them may still record the old revision on a new run."""
        self._collecting.start(self._collect_after_delay(namespace, workflow))

    async def _collect_after_delay(self, namespace: str, workflow: str) -> None:
        await asyncio.sleep(self.collect_delay)
        try:
            body = await self.cache.workflow(namespace, workflow)
            current = current_revision(as_workflow(body), self.config).name
            await self.collect(namespace, workflow, current)
        except NotFound:
            return  # deleted: its revisions go with it
        except KubeError as exc:  # the next edit or run deletion looks again
            log.warning("unused revisions of Workflow %s/%s: %s", namespace, workflow, exc)

    async def drain(self) -> None:
        """Wait for the collections scheduled so far (tests)."""
        await self._collecting.drain()

    async def collect(self, namespace: str, workflow: str, current: str | None) -> None:
        """Delete the Workflow's revision ConfigMaps that are not ``current`` and that
        no run records. Two lists and at most one delete per revision: it runs when a
        Workflow's revision changes and when a run of an older revision is deleted."""
        selector = f"{LABEL_WORKFLOW}={workflow},{LABEL_REVISION}"
        found = await self.kube.list(CONFIGMAPS, namespace, label_selector=selector)
        by_name = {
            c["metadata"]["name"]: (c["metadata"].get("labels") or {}).get(LABEL_REVISION, "")
            for c in found.get("items") or []
        }
        if not any(revision != current for revision in by_name.values()):
            return
        runs = await self.kube.list(
            RUNS, namespace, field_selector=f"spec.workflowRef.name={workflow}"
        )
        in_use = {
            str((r.get("status") or {}).get("revision"))
            for r in runs.get("items") or []
            if not r["metadata"].get("deletionTimestamp")
        }
        for name in revisions.unused(by_name, current, in_use):
            self._revisions.pop((namespace, name), None)
            with contextlib.suppress(NotFound):
                await self.kube.delete(CONFIGMAPS, namespace, name)

"""Workflows: their Ready and Scheduled conditions, and the ConfigMap holding an inline
source."""

from __future__ import annotations

import datetime as dt

from flux.k8s import metrics
from flux.k8s.decisions import condition_changed, set_condition, workflow_ready
from flux.k8s.kube import CONFIGMAPS, WORKFLOWS, Kube, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.labels import LABEL_WORKFLOW
from flux.k8s.models import Condition, to_json
from flux.k8s.operator.cache import Cache
from flux.k8s.operator.events import BackgroundEvents
from flux.k8s.pods import owner_reference, source_configmap_name
from flux.k8s.protocol import INLINE_SOURCE_MODULE
from flux.k8s.schedules import scheduled_condition
from flux.k8s.states import ConditionStatus, ConditionType, EventKind


class Workflows:
    def __init__(self, kube: Kube, cache: Cache, events: BackgroundEvents) -> None:
        self.kube = kube
        self.cache = cache
        self.events = events

    async def check(self, workflow: Body) -> None:
        """Set the Workflow's Ready condition; keep its inline source in a ConfigMap."""
        meta, spec = workflow["metadata"], workflow.get("spec") or {}
        metrics.workflow_seen(meta["name"])
        self.cache.workflow_seen(workflow)
        if spec.get("source"):
            await self._ensure_source(workflow)
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
        if not changed and len(kept) == len(stored):
            return
        now = dt.datetime.now(dt.UTC)
        for condition in wanted:
            kept = set_condition(kept, condition, now)
        status = {
            "conditions": [to_json(c) for c in kept],
            "observedGeneration": meta.get("generation"),
        }
        written = await self.kube.patch(
            WORKFLOWS, meta["namespace"], meta["name"], {"status": status}, status=True
        )
        self.cache.workflow_seen(written)
        for condition in changed:
            ok = condition.status == ConditionStatus.TRUE
            kind = EventKind.NORMAL if ok else EventKind.WARNING
            self.events.post(workflow, kind, condition.reason, condition.message)

    async def _ensure_source(self, workflow: Body) -> None:
        meta = workflow["metadata"]
        owner = {**owner_reference(workflow), "kind": "Workflow"}
        configmap: Body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": source_configmap_name(meta["name"]),
                "namespace": meta["namespace"],
                "ownerReferences": [owner],
                "labels": {LABEL_WORKFLOW: meta["name"]},
            },
            "data": {f"{INLINE_SOURCE_MODULE}.py": workflow["spec"]["source"]},
        }
        name = configmap["metadata"]["name"]
        try:
            await self.kube.replace(CONFIGMAPS, meta["namespace"], name, configmap)
        except NotFound:
            await self.kube.create(CONFIGMAPS, meta["namespace"], configmap)

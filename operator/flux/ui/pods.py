"""Where a task's pod stands, from the pod objects of a run on Kubernetes.

A task pod waits for a node (queued), then for its image and container to
start (starting), then runs. The operator deletes pods once their call has
moved on, so stages are shown for the pods that still exist: those of calls in
flight, which is when "what is it waiting for" matters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

CALL_ID_ANNOTATION = "flux.dev/call-id"


@dataclass(frozen=True)
class PodStage:
    kind: str  # queued, starting, running
    start: dt.datetime
    end: dt.datetime | None  # None: still in this stage
    pod: str


def pod_stages(pods: list[dict[str, Any]]) -> dict[str, list[PodStage]]:
    """Stages of every task pod, by the call id it runs (pods of several calls,
    such as a map's batch pods, carry no single call id and are left out)."""
    stages: dict[str, list[PodStage]] = {}
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp"))):
        meta = pod.get("metadata") or {}
        call = (meta.get("annotations") or {}).get(CALL_ID_ANNOTATION)
        created = _time(meta.get("creationTimestamp"))
        if not call or created is None:
            continue
        status = pod.get("status") or {}
        scheduled = next(
            (
                _time(c.get("lastTransitionTime"))
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "True"
            ),
            None,
        )
        started, finished = _container_times(status)
        name = str(meta.get("name", ""))
        found = [PodStage("queued", created, scheduled, name)]
        if scheduled is not None:
            found.append(PodStage("starting", scheduled, started, name))
        if started is not None:
            found.append(PodStage("running", started, finished, name))
        stages.setdefault(str(call), []).extend(found)
    return stages


def _container_times(status: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "running" in state:
            return _time(state["running"].get("startedAt")), None
        if "terminated" in state:
            done = state["terminated"]
            return _time(done.get("startedAt")), _time(done.get("finishedAt"))
    return None, None


def _time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

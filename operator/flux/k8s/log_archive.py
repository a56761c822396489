"""Task logs kept after their pods are gone: which pods, how much, in what shape.

The operator deletes a task pod as soon as its step settles, and the pod's log
goes with it. Before the deletion it reads the tail of the log (one request per
pod) and keeps it in a ConfigMap owned by the run, labelled
``flux.dev/role=archive-logs``, so that ``flux kube logs`` can show it later.
The logs of one pass go into one ConfigMap (split when they would not fit one):
a fan-out that settles a hundred pods costs one write, not a hundred. Nothing
about them is written into the run, which stays within its size budget
(:data:`flux.k8s.archive.RUN_BUDGET`); readers find them by label.

One entry per pod: a batch pod runs several calls and has one log, so its
entry names all of them. The task runner masks secret values before anything
is printed, so what is kept is masked already.

Pure: the requests are in :mod:`flux.k8s.operator.logs` and :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from flux.k8s import archive, labels
from flux.k8s.pods import dns_label
from flux.k8s.protocol import RESULT_LOG_MARKER, TASK_ENV, BatchSpec, parse_task_spec
from flux.k8s.states import PodRole

# The most of one attempt's log that is kept: its last 64 KiB (UTF-8).
LOG_TAIL_BYTES = 64 * 1024
# Lines asked of the API server: bounds the read of a chatty pod; the bytes
# kept are then cut to LOG_TAIL_BYTES.
LOG_TAIL_LINES = 5000
LOGS = "logs"
LOGS_ROLE = f"archive-{LOGS}"


class CallStep(TypedDict):
    """One step a task pod ran: a call's attempt, fallback or rollback."""

    callId: str
    step: str
    attempt: int


class LogEntry(TypedDict):
    """The kept log of one task pod."""

    pod: str
    calls: list[CallStep]
    started: str | None
    finished: str | None
    log: str
    truncated: bool  # only the last LOG_TAIL_BYTES were kept
    missing: str | None  # why there is no log (the read failed), else None


def is_task_pod(pod: Mapping[str, Any]) -> bool:
    return (pod["metadata"].get("labels") or {}).get(labels.LABEL_ROLE) == PodRole.TASK.value


def has_run(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's container ever started: a pod that never ran has no log."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = (statuses[0].get("state") or {}) if statuses else {}
    return "running" in state or "terminated" in state


def pods_to_keep(pods: Iterable[Mapping[str, Any]], deleting: Iterable[str]) -> list[str]:
    """The task pods about to be deleted whose log is worth keeping, in order."""
    going = set(deleting)
    return [
        pod["metadata"]["name"]
        for pod in pods
        if pod["metadata"]["name"] in going and is_task_pod(pod) and has_run(pod)
    ]


def pod_steps(pod: Mapping[str, Any]) -> list[CallStep]:
    """The steps a task pod ran, from the call it was started with (``FLUX_TASK``)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    env = containers[0].get("env") or [] if containers else []
    raw = next((e.get("value") for e in env if e.get("name") == TASK_ENV), None)
    if raw:
        try:
            spec = parse_task_spec(raw)
        except ValueError:
            spec = None
        if isinstance(spec, BatchSpec):
            return [
                CallStep(callId=i.call_id, step=i.step.value, attempt=i.attempt) for i in spec.items
            ]
        if spec is not None:
            return [CallStep(callId=spec.call_id, step=spec.step.value, attempt=spec.attempt)]
    # No readable spec: the annotations say the same for a pod of one call.
    notes = pod["metadata"].get("annotations") or {}
    call_id = notes.get(labels.ANNOTATION_CALL_ID)
    if not call_id:
        return []
    attempt = notes.get(labels.ANNOTATION_ATTEMPT, "1")
    return [
        CallStep(
            callId=call_id,
            step=notes.get(labels.ANNOTATION_STEP, "attempt"),
            attempt=int(attempt) if attempt.isdigit() else 1,
        )
    ]


def log_tail(text: str, limit: int = LOG_TAIL_BYTES) -> tuple[str, bool]:
    """What is kept of a pod's log: its last ``limit`` bytes without the result line
    (a protocol message, kept as the call's output), and whether it was cut."""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.startswith(RESULT_LOG_MARKER):
            lines.append(line)
        elif lines and lines[-1] == "\n":
            lines.pop()  # the runner ends the task's last line before the result's
    kept = "".join(lines)
    data = kept.encode()
    if len(data) <= limit:
        return kept, False
    # Cut on a character boundary: a continuation byte starts no character.
    cut = len(data) - limit
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut += 1
    return data[cut:].decode(), True


def entry(pod: Mapping[str, Any], text: str | None, missing: str | None = None) -> LogEntry:
    """The entry for ``pod``'s log, ``text`` as read (None when it could not be)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = (statuses[0].get("state") or {}) if statuses else {}
    ran = state.get("terminated") or state.get("running") or {}
    log, truncated = log_tail(text) if text is not None else ("", False)
    return LogEntry(
        pod=pod["metadata"]["name"],
        calls=pod_steps(pod),
        started=ran.get("startedAt"),
        finished=(state.get("terminated") or {}).get("finishedAt"),
        log=log,
        truncated=truncated,
        missing=missing if text is None else None,
    )


def configmaps(run: dict[str, Any], entries: Sequence[LogEntry]) -> list[dict[str, Any]]:
    """ConfigMaps owned by the run holding ``entries``, each named after its first
    pod (pod names are unique in a run, so a repeated pass replaces, never doubles)."""
    found = []
    start = 0
    for payload, count in archive.split(list(entries)):
        name = dns_label(entries[start]["pod"], LOGS, limit=253)
        found.append(archive.configmap(run, name, LOGS, payload))
        start += count
    return found


def selector(run_name: str) -> str:
    """The label selector of a run's log ConfigMaps."""
    return f"{labels.LABEL_RUN}={run_name},{labels.LABEL_ROLE}={LOGS_ROLE}"


def matches(item: LogEntry, call_id: str | None, attempt: int | None) -> bool:
    if call_id is None and attempt is None:
        return True
    return any(
        (call_id is None or step["callId"] == call_id)
        and (attempt is None or step["attempt"] == attempt)
        for step in item["calls"]
    )


def ordered(entries: Iterable[LogEntry]) -> list[LogEntry]:
    """Entries in the order their pods ran, each pod once: a pass retried after
    keeping a log keeps it again, perhaps in another ConfigMap."""
    by_pod: dict[str, LogEntry] = {}
    for item in entries:
        held = by_pod.get(item["pod"])
        if held is None or (held["missing"] is not None and item["missing"] is None):
            by_pod[item["pod"]] = item
    return sorted(by_pod.values(), key=lambda e: (e["started"] or "~", e["pod"]))

"""The JSON patch that writes a pass's status changes onto a run.

Not a merge patch: a merge patch drops every null, also inside task outputs.
Writes that depend on what the pass read carry ``test`` operations, so a stale
view fails the write (and the pass runs again on a fresh read) instead of
overwriting what someone else wrote meanwhile.
"""

from __future__ import annotations

from typing import Any

from flux.k8s.kube import JsonPatch
from flux.k8s.kube.patch import pointer


def status_ops(current: dict[str, Any] | None, changes: dict[str, Any]) -> JsonPatch:
    """Operations for status changes.

    A None at the top of a change, or of a task record, means "no longer set".
    """
    current = current or {}
    ops = JsonPatch()
    if not current:
        # Only onto a run without status: a driver's first write may have come first.
        ops.test("/status", None).add("/status", {})
    elif "phase" in changes or "conditions" in changes:
        # The phase moves only from the one this pass saw (the driver writes it too).
        ops.test("/status/phase", current.get("phase"))
    for key, value in changes.items():
        if key == "tasks" and current.get("tasks"):
            ops.extend(task_record_ops(current["tasks"], value))
            continue
        if key == "tasks":
            value = [_set_fields(record) for record in value]
        if value is None:
            if key in current:
                ops.remove(pointer("status", key))
        else:
            ops.add(pointer("status", key), value)
    return ops


def task_record_ops(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> JsonPatch:
    """Per-record operations turning ``current`` into ``wanted``.

    ``wanted`` keeps the current records' order, with records removed and new
    ones at the end, so a pass touching few records writes only those. Each
    replace first tests the callId at its index, so a stale view fails the
    patch instead of overwriting the wrong record.
    """
    ops = JsonPatch()
    by_id = {r["callId"]: _set_fields(r) for r in wanted}
    for index in reversed(range(len(current))):
        if current[index]["callId"] not in by_id:
            ops.remove(pointer("status", "tasks", index))
    kept = [r for r in current if r["callId"] in by_id]
    for index, record in enumerate(kept):
        new = by_id[record["callId"]]
        if new != record:
            path = pointer("status", "tasks", index)
            ops.test(f"{path}/callId", record["callId"]).replace(path, new)
    known = {r["callId"] for r in current}
    for call_id, record in by_id.items():
        if call_id not in known:
            ops.add("/status/tasks/-", record)
    return ops


def _set_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}

"""Whether a Workflow is usable: its Ready condition (pure)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_workflow_spec(spec: dict[str, Any]) -> str | None:
    """The problem with a Workflow spec, or None. Inline source is compiled, never run."""
    source, entrypoint = spec.get("source"), spec.get("entrypoint")
    if bool(source) == bool(entrypoint):
        return "set exactly one of spec.entrypoint and spec.source"
    if entrypoint:
        if not _ENTRYPOINT.match(entrypoint):
            return f"spec.entrypoint {entrypoint!r} is not of the form module:function"
        return None
    function = spec.get("function")
    if not function or not str(function).isidentifier():
        return "spec.function must name the @workflow function defined in spec.source"
    try:
        compile(str(source), "<spec.source>", "exec")
    except SyntaxError as exc:
        return f"spec.source line {exc.lineno}: syntax error: {exc.msg}"
    return None


def ready_condition(
    spec: dict[str, Any],
    generation: int | None,
    conditions: list[dict[str, Any]],
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The Ready condition to store, or None when the stored one is current."""
    problem = check_workflow_spec(spec)
    wanted = {
        "type": "Ready",
        "status": "False" if problem else "True",
        "reason": "InvalidSpec" if problem else "Valid",
        "message": problem or "the workflow can run",
        "observedGeneration": generation,
    }
    old = next((c for c in conditions if c.get("type") == "Ready"), None)
    if old and all(old.get(k) == wanted[k] for k in wanted):
        return None
    same_status = old is not None and old.get("status") == wanted["status"]
    wanted["lastTransitionTime"] = (
        old["lastTransitionTime"] if same_status and old else (now.isoformat())
    )
    return wanted

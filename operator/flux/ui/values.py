"""Stored values as people read them: the JSON itself, and errors in one line."""

from __future__ import annotations

import json
from typing import Any, cast

from flux.engine.failures import ErrorInfo, describe

# Past this a value is cut on the page; the whole value is in the task's record.
SHOWN_CHARS = 20_000


def pretty(value: Any, limit: int = SHOWN_CHARS) -> str:
    """The value as indented JSON, exactly as stored (Flux tags such as
    ``{"$flux": ...}`` included): nothing is decoded, nothing imported."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters)"


def brief(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(info: Any) -> str:
    """One line for a stored error: innermost cause, and attempts if retried."""
    if not isinstance(info, dict):
        return brief(info)
    error = cast(ErrorInfo, info)
    attempts = None
    level: Any = error
    while isinstance(level, dict):
        attempts = attempts or level.get("attempts")
        level = level.get("cause")
    try:
        text = describe(error)
    except (AttributeError, TypeError):  # not an error as Flux stores them
        return brief(info)
    return f"{text} (after {attempts} attempts)" if attempts else str(text)


def is_timeout(info: Any) -> bool:
    """Whether a stored error, or any cause in its chain, is a timeout."""
    level = info
    while isinstance(level, dict):
        if level.get("kind") == "timeout" or level.get("type") == "ExecutionTimeoutError":
            return True
        level = level.get("cause")
    return False


def event_detail(event_type: str, value: Any) -> str:
    """A few words on what an event records: arguments, attempts, delays, errors."""
    try:
        return _detail(event_type, value)
    except (AttributeError, KeyError, TypeError, ValueError):
        # History written by another version of Flux: show it raw rather than fail.
        return brief(value)


def _detail(event_type: str, value: Any) -> str:
    if value is None:
        return ""
    if event_type in ("WORKFLOW_FAILED", "TASK_FAILED"):
        return error_text(value)
    if event_type == "TASK_STARTED" and isinstance(value, dict):
        if "until" in value:
            return f"sleep {value['seconds']:g}s until {value['until']}"
        args = [brief(a, 30) for a in value.get("args") or []]
        kwargs = [f"{k}={brief(v, 30)}" for k, v in (value.get("kwargs") or {}).items()]
        return brief_text(f"({', '.join(args + kwargs)})")
    if event_type == "TASK_RETRY_STARTED":
        return (
            f"attempt {value['attempt']} in {value['delay']:g}s after {error_text(value['error'])}"
        )
    if event_type == "TASK_RETRY_FAILED":
        return f"attempt {value['attempt']}: {error_text(value['error'])}"
    if event_type == "TASK_RETRY_COMPLETED":
        return f"attempt {value['attempt']} succeeded"
    if event_type.endswith(("FALLBACK_STARTED", "ROLLBACK_STARTED")):
        return f"after {error_text(value['error'])}"
    if event_type.endswith(("FALLBACK_FAILED", "ROLLBACK_FAILED")):
        return error_text(value["error"])
    if event_type == "TASK_PAUSED":
        return f"output {brief(value['output'])}"
    if event_type == "WORKFLOW_PAUSED":
        return f"at pause {value['pause']!r}"
    return brief(value)


def brief_text(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

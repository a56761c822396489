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

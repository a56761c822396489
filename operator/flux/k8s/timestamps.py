"""Timestamps as the Kubernetes API writes them."""

from __future__ import annotations

import datetime as dt
from typing import Any


def format_time(moment: dt.datetime) -> str:
    """``moment`` as the CRD models write a time: RFC 3339 in UTC with ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> dt.datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z`` or an offset) as an aware datetime;
    None when absent or unreadable (these only feed metrics and displays)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

"""Comparing resourceVersions."""

from __future__ import annotations


def newer(version: str | None, than: str | None) -> bool:
    """Whether resourceVersion ``version`` follows ``than`` (True when either is unknown).

    Kubernetes calls resourceVersions opaque, but every etcd-backed API server
    issues increasing integers and each watch delivers them in order; a watch
    event older than a state already held (our own write's response) brings
    nothing new, and holding it instead would undo what that write did.
    """
    if version is None or than is None:
        return True
    try:
        return int(version) > int(than)
    except ValueError:
        return version != than

"""FakeKube answers as the API server does where RFC 6902 and the server differ."""

from __future__ import annotations

import asyncio

import pytest

from flux.k8s.kube import RUNS, JsonPatch, PatchTestFailed
from flux.k8s.kube.fake import FakeKube


def test_a_test_for_null_passes_where_nothing_is() -> None:
    kube = FakeKube()
    kube.put(RUNS, {"metadata": {"name": "r1", "namespace": "ns"}, "spec": {}})
    first = JsonPatch().test("/status", None).add("/status", {}).add("/status/phase", "Pending")
    written = asyncio.run(kube.patch(RUNS, "ns", "r1", first, status=True))
    assert written["status"] == {"phase": "Pending"}
    # Now there is a status: the same test fails, as a second writer's must.
    with pytest.raises(PatchTestFailed):
        asyncio.run(kube.patch(RUNS, "ns", "r1", first, status=True))
    null_there = JsonPatch().add("/status/error", None)
    asyncio.run(kube.patch(RUNS, "ns", "r1", null_there, status=True))
    asyncio.run(kube.patch(RUNS, "ns", "r1", JsonPatch().test("/status/error", None), status=True))

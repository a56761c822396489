"""What the drivers and the run store need of the Kubernetes seam, beyond
tests/unit/k8s/kube/test_kube_seam.py: a JSON-patch test for null on a missing member,
400 as a typed error, ConfigMaps written again after a retried write."""

from __future__ import annotations

import asyncio

import pytest

from flux.k8s.kube import CONFIGMAPS, RUNS, JsonPatch, PatchTestFailed
from flux.k8s.kube.errors import BadRequest, error_for
from flux.k8s.kube.fake import FakeKube
from flux.k8s.kube.objects import create_or_replace


def test_a_test_for_null_passes_on_a_missing_member_as_the_api_server_does() -> None:
    kube = FakeKube()
    kube.put(RUNS, {"metadata": {"name": "r1", "namespace": "ns"}})
    claim = JsonPatch().test("/status", None).add("/status", {}).add("/status/phase", "Running")
    written = asyncio.run(kube.patch(RUNS, "ns", "r1", claim, status=True))
    assert written["status"] == {"phase": "Running"}
    # Once there is a status, the same claim fails whole.
    with pytest.raises(PatchTestFailed):
        asyncio.run(kube.patch(RUNS, "ns", "r1", claim, status=True))
    assert kube.stored(RUNS, "ns", "r1")["status"] == {"phase": "Running"}  # type: ignore[index]


def test_400_is_a_bad_request() -> None:
    error = error_for(400, 'container "main" in pod "p" is waiting to start')
    assert isinstance(error, BadRequest) and error.status == 400


def test_a_configmap_put_twice_is_replaced_not_refused() -> None:
    kube = FakeKube()
    manifest = {"metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "1"}}
    first = asyncio.run(create_or_replace(kube, CONFIGMAPS, manifest))
    again = asyncio.run(create_or_replace(kube, CONFIGMAPS, {**manifest, "data": {"k": "2"}}))
    assert again["data"] == {"k": "2"}
    assert int(again["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert (kube.count("create", CONFIGMAPS), kube.count("update", CONFIGMAPS)) == (2, 1)

"""The operator's views of runs and pods: what it holds between watch events and its own writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s import metrics
from flux.k8s.config import OperatorConfig
from flux.k8s.operator import Reconciler


def reconciler() -> Reconciler:
    return Reconciler(client.ApiClient(), OperatorConfig(default_image="flux-runtime:test"))


def run(version: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "r1", "resourceVersion": version},
        "status": {"phase": phase},
    }


def pod(version: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "r1-say-1",
            "resourceVersion": version,
            "labels": {"flux.dev/run": "r1"},
        },
        "status": {"phase": phase},
    }


def test_a_watch_event_older_than_our_own_write_is_not_held() -> None:
    asyncio.run(_older_run_events())


async def _older_run_events() -> None:
    r = reconciler()
    assert r.run_seen(run("10", "Running"))  # our write's response
    # The watch still delivers the state before it: holding that would undo our write.
    assert not r.run_seen(run("9", "Pending"))
    assert not r.run_seen(run("10", "Running"))  # our own write, seen again: no pass
    assert r.run_seen(run("11", "Succeeded"))
    held = await r._run("ns", "r1")
    assert held is not None and held["status"]["phase"] == "Succeeded"


def test_pods_are_held_from_creation_to_deletion() -> None:
    asyncio.run(_pod_lifetime())


async def _pod_lifetime() -> None:
    r = reconciler()
    r._pods_listed.add(("ns", "r1"))
    assert not r.pod_seen("ADDED", pod("5", "Pending"))  # a pass created it: nothing new
    assert r.pod_seen("MODIFIED", pod("7", "Succeeded"))
    assert not r.pod_seen("MODIFIED", pod("6", "Running"))  # late, older
    (held,) = await r._pods_of("ns", "r1")
    assert held["status"]["phase"] == "Succeeded"
    r._own_deletes.add(("ns", "r1-say-1"))
    assert await r._pods_of("ns", "r1") == []  # on its way out
    assert not r.pod_seen("MODIFIED", pod("8", "Succeeded"))
    assert not r.pod_seen("DELETED", pod("9", "Succeeded"))  # we deleted it: no news
    assert r._pods_seen[("ns", "r1")] == {} and not r._own_deletes


class _Refused:
    status = 403

    async def read(self) -> bytes:
        return b'{"message": "exceeded quota"}'


class _QuotaCore:
    async def create_namespaced_pod(self, namespace: str, pod: Any, **_: Any) -> _Refused:
        return _Refused()


def test_a_refused_pod_creation_is_raised_and_counted_as_an_api_error() -> None:
    asyncio.run(_refused_creation())


async def _refused_creation() -> None:
    r = reconciler()
    r.core = _QuotaCore()
    errors = metrics.API_ERRORS.labels("create", "pods", "403")
    before = errors._value.get()
    with pytest.raises(ApiException) as raised:
        await r._create_pod("ns", pod("1"))
    assert raised.value.status == 403
    assert errors._value.get() == before + 1  # the quota alert and panel see it

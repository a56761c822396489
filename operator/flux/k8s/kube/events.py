"""Kubernetes Events about our objects, posted by whoever made the change they report."""

from __future__ import annotations

import datetime as dt
import logging
import socket

from flux.k8s.kube.client import Body, Kube
from flux.k8s.kube.errors import KubeError
from flux.k8s.kube.resources import EVENTS, RUNS

log = logging.getLogger("flux.events")
# The API server refuses longer messages.
MESSAGE_LIMIT = 1024


def event_body(
    obj: Body, kind: str, reason: str, message: str, component: str, instance: str, now: dt.datetime
) -> Body:
    """The Event (core/v1) saying ``reason: message`` about ``obj``."""
    meta = obj["metadata"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", RUNS.api_version),
            "kind": obj.get("kind", RUNS.kind),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": kind,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Posts Events as ``component``; a refused Event is logged, never raised: the
    change it reports has happened either way."""

    def __init__(self, kube: Kube, component: str) -> None:
        self.kube = kube
        self.component = component
        self.instance = socket.gethostname()

    async def post(self, obj: Body, kind: str, reason: str, message: str) -> None:
        body = event_body(
            obj, kind, reason, message, self.component, self.instance, dt.datetime.now(dt.UTC)
        )
        try:
            await self.kube.create(EVENTS, obj["metadata"]["namespace"], body)
        except KubeError as exc:
            name = obj["metadata"].get("name")
            log.warning("%s: event %s not posted: %s", name, reason, exc)

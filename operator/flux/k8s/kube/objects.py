"""Writes made of more than one request."""

from __future__ import annotations

from flux.k8s.kube.client import Body, Kube
from flux.k8s.kube.errors import Conflict
from flux.k8s.kube.resources import Resource


async def create_or_replace(kube: Kube, resource: Resource, body: Body) -> Body:
    """Create ``body``, or replace the object of its name (a retried write whose
    first attempt got through): what ``kubectl apply`` would leave, in one or two requests."""
    meta = body["metadata"]
    try:
        return await kube.create(resource, meta["namespace"], body)
    except Conflict:
        return await kube.replace(resource, meta["namespace"], meta["name"], body)

"""The one seam to the Kubernetes API.

Everything in Flux that talks to an API server (the operator, the drivers, the
``flux kube`` commands, the console) does it through :class:`Kube`, sees its
failures as the :mod:`~flux.k8s.kube.errors` tree, and builds JSON patches with
:class:`~flux.k8s.kube.patch.JsonPatch`. Unit tests use the in-memory fake in
:mod:`flux.k8s.kube.fake` instead of a server; nothing else does.
"""

from flux.k8s.kube.client import Kube, WatchEvent
from flux.k8s.kube.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NoCredentials,
    NotFound,
    PatchTestFailed,
    Unreachable,
)
from flux.k8s.kube.patch import JsonPatch
from flux.k8s.kube.resources import CONFIGMAPS, EVENTS, LEASES, PODS, RUNS, WORKFLOWS, Resource

__all__ = [
    "CONFIGMAPS",
    "EVENTS",
    "LEASES",
    "PODS",
    "RUNS",
    "WORKFLOWS",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "JsonPatch",
    "Kube",
    "KubeError",
    "NoCredentials",
    "NotFound",
    "PatchTestFailed",
    "Resource",
    "Unreachable",
    "WatchEvent",
]

"""Connecting to the API server from wherever Flux runs: :func:`connect` picks
the credentials (in a pod its service account, elsewhere ``FLUX_KUBECONFIG`` or
the usual kubeconfig) and :class:`KubeClient` talks to it.

The operator, the CLI and the console come in here. The driver pods do not:
they use :mod:`flux.k8s.kube.incluster` and :mod:`flux.k8s.kube.rest` alone,
so they never import kubernetes-asyncio's kubeconfig loader.
"""

from __future__ import annotations

import os

from flux.k8s.kube.connection import PROXY_ENV, Connection
from flux.k8s.kube.incluster import (
    KUBECONFIG_ENV,
    SERVICE_ACCOUNT_NAMESPACE,
    connect_in_cluster,
    in_pod,
    pod_namespace,
)
from flux.k8s.kube.kubeconfig import connect_kubeconfig, kubeconfig_namespace
from flux.k8s.kube.rest import (
    JSON_PATCH,
    MERGE_PATCH,
    KubeClient,
    RequestObserver,
    error_from_response,
)

__all__ = [
    "JSON_PATCH",
    "KUBECONFIG_ENV",
    "MERGE_PATCH",
    "PROXY_ENV",
    "SERVICE_ACCOUNT_NAMESPACE",
    "Connection",
    "KubeClient",
    "RequestObserver",
    "connect",
    "context_namespace",
    "error_from_response",
]


async def connect() -> Connection:
    """In a pod, its service account; elsewhere FLUX_KUBECONFIG or the usual kubeconfig."""
    if in_pod():
        return connect_in_cluster()
    return await connect_kubeconfig(os.environ.get(KUBECONFIG_ENV))


def context_namespace() -> str | None:
    """The namespace the credentials :func:`connect` picks name: the current
    kubeconfig context's, or in a pod its own; None when they name none."""
    if in_pod():
        return pod_namespace(SERVICE_ACCOUNT_NAMESPACE)
    return kubeconfig_namespace(os.environ.get(KUBECONFIG_ENV))

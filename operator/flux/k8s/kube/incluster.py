"""A pod's own credentials: its service account's token, the cluster's CA and
its namespace, read with the standard library.

The driver pods use nothing else, so they never import kubernetes-asyncio (its
package imports every generated model: a third of a second of CPU a pod).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping

from flux.k8s.kube.connection import Connection, tls_context
from flux.k8s.kube.errors import NoCredentials

KUBECONFIG_ENV = "FLUX_KUBECONFIG"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where a pod's service account says which namespace it is in.
SERVICE_ACCOUNT_NAMESPACE = f"{SERVICE_ACCOUNT_DIR}/namespace"
# The kubelet rotates a bound token well before it expires; like client-go,
# read the file again at most this often (and whenever the server answers 401).
TOKEN_REREAD_SECONDS = 60.0


def in_pod(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the service account is the credential to use: in a pod, and no
    kubeconfig named instead."""
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and not env.get(KUBECONFIG_ENV)


class ServiceAccountToken:
    """The bearer token in a file the kubelet replaces as the token rotates."""

    def __init__(
        self,
        path: str,
        *,
        reread_seconds: float = TOKEN_REREAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._reread_seconds = reread_seconds
        self._clock = clock
        self._token = self._read()
        self._read_at = clock()

    async def header(self) -> str | None:
        if self._clock() - self._read_at >= self._reread_seconds:
            self._reload()
        return f"Bearer {self._token}"

    def rejected(self) -> bool:
        refused = self._token
        self._reload()
        return self._token != refused

    def _reload(self) -> None:
        # Being replaced right now, or gone: the last one is still the best guess.
        with contextlib.suppress(NoCredentials):
            self._token = self._read()
        self._read_at = self._clock()

    def _read(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as exc:
            raise NoCredentials(f"service account token unreadable: {exc}") from None
        if not token:
            raise NoCredentials(f"service account token {self.path} is empty")
        return token


def connect_in_cluster(
    environ: Mapping[str, str] | None = None, directory: str = SERVICE_ACCOUNT_DIR
) -> Connection:
    """The API server of the pod's cluster, as its service account."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise NoCredentials("not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca_file = f"{directory}/ca.crt"
    try:
        context = tls_context(ca_file=ca_file)
    except (OSError, ValueError) as exc:
        raise NoCredentials(f"service account CA {ca_file} unusable: {exc}") from None
    return Connection(
        base_url=f"https://{host}:{port}",
        ssl_context=context,
        credentials=ServiceAccountToken(f"{directory}/token"),
    )


def pod_namespace(path: str = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    """The namespace the pod's service account is in; None when unreadable."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip() or None
    except OSError:
        return None

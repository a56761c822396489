"""Credentials from a kubeconfig (the operator and the CLI outside a pod, tests):
kubernetes-asyncio's loader, which knows every way a kubeconfig authenticates
(exec plugins, client certificates, OIDC, GCP tokens), turned into a
:class:`~flux.k8s.kube.connection.Connection`.

The one module that imports kubernetes-asyncio; the driver pods never reach it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client, config

from flux.k8s.kube.connection import Connection, tls_context
from flux.k8s.kube.errors import NoCredentials

# Tokens from an exec plugin or an auth provider expire; ask again this often
# (kubernetes-asyncio's own refresh interval) and when the server answers 401.
REFRESH_SECONDS = 60.0


class LoaderToken:
    """The ``Authorization`` value a kubeconfig user gives, refreshed when it
    comes from something that issues short-lived tokens."""

    def __init__(
        self,
        loader: Any,
        configuration: client.Configuration,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._value: str | None = configuration.api_key.get("BearerToken")
        self._clock = clock
        self._refreshed_at = clock()
        self._stale = False

    async def header(self) -> str | None:
        if self._refreshes() and (
            self._stale or self._clock() - self._refreshed_at >= REFRESH_SECONDS
        ):
            await self._refresh()
        return self._value

    def rejected(self) -> bool:
        # The refresh itself may need to await (an exec plugin): mark it for the
        # next header(); the refused request is tried again only if that can help.
        self._stale = True
        return self._refreshes()

    def _refreshes(self) -> bool:
        user = self._loader._user or {}
        return self._loader.provider in ("gcp", "oidc") or "exec" in user

    async def _refresh(self) -> None:
        self._stale = False
        self._refreshed_at = self._clock()
        try:
            if self._loader.provider == "gcp":
                await self._loader.load_gcp_token()
            elif self._loader.provider == "oidc":
                await self._loader._load_oid_token()
            else:
                await self._loader.load_from_exec_plugin()
        except Exception as exc:
            raise NoCredentials(f"kubeconfig credentials could not be refreshed: {exc}") from None
        token = getattr(self._loader, "token", None)
        if isinstance(token, str) and token:
            self._value = token


async def connect_kubeconfig(path: str | None) -> Connection:
    """The API server and user of ``path``'s current context (None: the usual
    kubeconfig, ``$KUBECONFIG`` or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        loader = await config.load_kube_config(config_file=path, client_configuration=configuration)
        context = tls_context(
            ca_file=configuration.ssl_ca_cert,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
            verify=bool(configuration.verify_ssl),
            strict=not configuration.disable_strict_ssl_verification,
        )
    except (config.ConfigException, OSError, ValueError) as exc:
        raise NoCredentials(f"no usable kubeconfig ({exc})") from None
    return Connection(
        base_url=str(configuration.host).rstrip("/"),
        ssl_context=context,
        credentials=LoaderToken(loader, configuration),
        proxy=configuration.proxy or None,
        server_hostname=configuration.tls_server_name or None,
    )


def kubeconfig_namespace(path: str | None) -> str | None:
    """The namespace of ``path``'s current context; None when it names none."""
    try:
        _, current = config.list_kube_config_contexts(config_file=path)
    except Exception:
        # Only a default is at stake: connecting reports what is wrong with the file.
        return None
    namespace = ((current or {}).get("context") or {}).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None

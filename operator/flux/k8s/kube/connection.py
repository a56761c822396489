"""Where an API server is and how to prove who we are to it: a
:class:`Connection` (base URL, TLS, credentials) and the aiohttp session on it.

Two places fill one in: a pod's service account (:mod:`flux.k8s.kube.incluster`,
standard library only) and a kubeconfig (:mod:`flux.k8s.kube.kubeconfig`, which
alone imports kubernetes-asyncio's loader).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

# The environment variables through which aiohttp's trust_env finds a proxy.
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
# Watch events carry whole objects; etcd allows up to 1.5 MiB a request.
READ_BUFFER_BYTES = 2**21
# Connections to the API server at once (kubernetes-asyncio's default).
CONNECTIONS = 100
# A server that does not accept a connection in this long is unreachable. No
# total timeout for the session: the client sets one for each kind of request
# (flux.k8s.kube.rest), as watches and log streams last as long as the server keeps them.
CONNECT_SECONDS = 30


class Credentials(Protocol):
    """The ``Authorization`` header's value, kept fresh."""

    async def header(self) -> str | None:
        """The value to send now (None: no header, e.g. client certificates)."""
        ...

    def rejected(self) -> bool:
        """The server answered 401: look again for a newer credential; True if
        one may now be sent that differs from the refused one."""
        ...


class NoToken:
    """Client certificates (in the SSL context) or no authentication at all."""

    async def header(self) -> str | None:
        return None

    def rejected(self) -> bool:
        return False


@dataclass
class Connection:
    """One API server as a set of credentials reaches it; its session is opened
    on first use, inside the event loop that uses it."""

    base_url: str
    ssl_context: ssl.SSLContext
    credentials: Credentials = field(default_factory=NoToken)
    # kubeconfig's proxy-url and tls-server-name.
    proxy: str | None = None
    server_hostname: str | None = None
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = open_session(self.ssl_context)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def open_session(ssl_context: ssl.SSLContext) -> aiohttp.ClientSession:
    """A session that looks in the environment for a proxy only when one is set.

    With ``trust_env=True`` aiohttp sends every request through the thread pool
    twice, for a proxy in the environment and for ~/.netrc credentials (which
    the Kubernetes clients never use): a third of the client's CPU a request in
    `benchmarks/RESULTS.md` ("the client's thread hops"). A proxy set in the
    environment is still honoured.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS, ssl=ssl_context),
        trust_env=trusts_env(),
        read_bufsize=READ_BUFFER_BYTES,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS),
    )


def trusts_env() -> bool:
    """Whether a session must look in the environment: a proxy variable is set."""
    return any(os.environ.get(name) for name in PROXY_ENV)


def tls_context(
    *,
    ca_file: str | None = None,
    ca_data: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    verify: bool = True,
    strict: bool = True,
) -> ssl.SSLContext:
    """The SSL context for a cluster's CA and, when given, a client certificate.

    ``strict=False`` accepts certificates that Python 3.13's strict X.509
    checks refuse (kubernetes-asyncio's ``disable_strict_ssl_verification``:
    some clusters' CAs lack the extensions those checks want)."""
    context = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
    if cert_file:
        context.load_cert_chain(cert_file, keyfile=key_file)
    if not strict:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

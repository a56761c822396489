"""The operator's liveness and readiness endpoints, for the kubelet's probes.

``/healthz`` answers while the process's event loop does (leader or standby);
``/readyz`` answers 200 only while the process can serve, as its ``ready``
callable says (see ``flux.k8s.__main__``), 503 otherwise. kopf's own liveness
endpoint runs only while kopf does, that is only on the leader, so a standby
would fail it and be restarted for waiting.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


class Probes:
    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self, address: str) -> None:
        """Serve on ``address``, ``host:port``."""
        host, _, port = address.rpartition(":")
        await self._runner.setup()
        await web.TCPSite(self._runner, host or "0.0.0.0", int(port)).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

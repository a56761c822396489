"""`flux ui` in the background over a test's FLUX_HOME, for the browser tests."""

from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workflows.harness import Flux, wait_for


class FluxMain(Flux):
    """``flux`` through its entry point: under ``python -m flux.local.cli`` the
    commands defined after the module's ``__main__`` guard are not registered yet."""

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from flux.local.cli import main; main()", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def console(flux: Flux, log: Path) -> Iterator[str]:
    """The console's URL while `flux ui` serves ``flux``'s home."""
    port = free_port()
    server = flux.start("ui", "--port", str(port), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: served(url) or server.poll() is not None, what="flux ui")
        assert server.poll() is None, log.read_text()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)

"""Serve the console with uvicorn."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import uvicorn

from flux.ui.app import create_app
from flux.ui.sqlite_source import SqliteSource


class CannotServe(OSError):
    """The address cannot be listened on; the message says which and why."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_address(host: str, port: int) -> None:
    """Fail with one line before uvicorn starts, rather than a logged traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CannotServe(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CannotServe(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve_local(db: Path, host: str, port: int) -> None:
    check_address(host, port)
    app = create_app(SqliteSource(db))
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)

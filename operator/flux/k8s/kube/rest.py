""":class:`KubeClient`: the :class:`~flux.k8s.kube.client.Kube` interface on a
real API server, as plain HTTP on an aiohttp session we own.

Bodies go out and come back as plain JSON: decoding responses into a client
library's model classes (dates and all) cost more than the requests
themselves, and importing kubernetes-asyncio (every generated model) cost a
driver pod a third of a second. Every failure is raised as a typed
:class:`~flux.k8s.kube.errors.KubeError`.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast
from urllib.parse import quote

import aiohttp

from flux.k8s.kube.client import Body, WatchEvent
from flux.k8s.kube.connection import CONNECT_SECONDS, Connection
from flux.k8s.kube.errors import KubeError, Unreachable, error_for
from flux.k8s.kube.patch import JsonPatch
from flux.k8s.kube.resources import Resource

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# Told each request as it ends: verb, resource and the HTTP status (0 unreachable).
RequestObserver = Callable[[str, str, int], None]
Query = list[tuple[str, str]]
# How long a watch lasts when its caller names no limit.
WATCH_SECONDS = 300
# A request (not a watch or a followed log) unanswered this long failed: the
# API server gives up on its own at 60 s by default, so only a connection that
# went dead under it (a server or node lost) waits longer, and without a limit
# it would hold the caller (and a run's reconcile lock) forever.
REQUEST_SECONDS = 90.0
# A watch silent this long is treated as ended, and follow() watches again from
# the last version seen: the API server sends a bookmark to every watch that asks
# for them about once a minute, so a longer silence is a dead connection.
WATCH_IDLE_SECONDS = 90.0


def error_from_response(status: int, reason: str, body: str | bytes | None) -> KubeError:
    """The typed error for a response: the message of the Status object the API
    server sends, or the reason phrase when the body is not one."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    message = ""
    if body:
        try:
            said = json.loads(body)
        except ValueError:
            said = None
        if isinstance(said, dict):
            # A Status object; one without a message leaves the reason phrase.
            message = said["message"] if isinstance(said.get("message"), str) else ""
        else:
            message = body[:500]
    return error_for(status, message or reason, reason)


class KubeClient:
    """One API server, as the credentials of ``connection`` reach it."""

    def __init__(
        self,
        connection: Connection,
        observe: RequestObserver | None = None,
        *,
        request_seconds: float = REQUEST_SECONDS,
        watch_idle_seconds: float = WATCH_IDLE_SECONDS,
    ) -> None:
        self.connection = connection
        self._observe = observe
        self._request = aiohttp.ClientTimeout(total=request_seconds, sock_connect=CONNECT_SECONDS)
        self._watch = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_SECONDS, sock_read=watch_idle_seconds
        )
        # A followed log may rightly be silent for as long as the task is.
        self._stream = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS)

    async def close(self) -> None:
        await self.connection.close()

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        return await self._json("get", resource, "GET", _path(resource, namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Body:
        query = _query(labelSelector=label_selector, fieldSelector=field_selector)
        return await self._json("list", resource, "GET", _path(resource, namespace), query=query)

    async def create(self, resource: Resource, namespace: str, body: Body) -> Body:
        return await self._json("create", resource, "POST", _path(resource, namespace), body)

    async def replace(self, resource: Resource, namespace: str, name: str, body: Body) -> Body:
        return await self._json("update", resource, "PUT", _path(resource, namespace, name), body)

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: JsonPatch | Body,
        *,
        status: bool = False,
    ) -> Body:
        path = _path(resource, namespace, name) + ("/status" if status else "")
        if isinstance(patch, JsonPatch):
            body: Any = patch.ops
            content_type = JSON_PATCH
        else:
            body, content_type = patch, MERGE_PATCH
        label = f"{resource.plural}/status" if status else resource.plural
        return await self._json("patch", label, "PATCH", path, body, content_type=content_type)

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None:
        query = _query(gracePeriodSeconds=grace_period_seconds)
        await self._json(
            "delete", resource, "DELETE", _path(resource, namespace, name), query=query
        )

    async def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        path = _path_of("", "v1", namespace, "pods", name) + "/log"
        with self._answer("get", "pods/log", f"GET {path}") as answer:
            query = _query(tailLines=tail_lines)
            async with self._open("GET", path, query, answer, self._request) as response:
                raw = await response.read()
        return raw.decode(errors="replace")

    async def stream_pod_log(self, namespace: str, name: str) -> AsyncIterator[str]:
        path = _path_of("", "v1", namespace, "pods", name) + "/log"
        with self._answer("get", "pods/log", f"log of pod {namespace}/{name}") as answer:
            query = _query(follow=True)
            async with self._open(
                "GET", path, query, answer, self._stream, accept="*/*"
            ) as response:
                # Chunks may end inside a character.
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                async for chunk in response.content.iter_any():
                    text = decoder.decode(chunk)
                    if text:
                        yield text
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest

    async def watch(
        self,
        resource: Resource,
        namespace: str,
        *,
        resource_version: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        query = _query(
            watch=True,
            resourceVersion=resource_version,
            fieldSelector=field_selector,
            labelSelector=label_selector,
            timeoutSeconds=timeout_seconds or WATCH_SECONDS,
            # follow() moves its resourceVersion on with them, so a watch
            # restarted after a quiet while need not list again.
            allowWatchBookmarks=True,
        )
        path = _path(resource, namespace)
        with self._answer("watch", resource.plural, f"watch of {resource.plural}") as answer:
            async with self._open("GET", path, query, answer, self._watch) as response:
                try:
                    async for line in _lines(response.content):
                        yield _watch_event(line)
                except aiohttp.SocketTimeoutError:
                    return  # silent past any bookmark: ended, as far as the caller knows

    @contextlib.contextmanager
    def _answer(self, verb: str, resource: str, what: str) -> Iterator[_Answer]:
        """Failures of a request as typed errors; its status told to the observer."""
        answer = _Answer()
        try:
            yield answer
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"{what}: {exc}") from None
        finally:
            if self._observe is not None:
                self._observe(verb, resource, answer.status)

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        query: Query | None,
        answer: _Answer,
        timeout: aiohttp.ClientTimeout,
        body: bytes | None = None,
        *,
        content_type: str = JSON,
        accept: str = JSON,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response to a request, its status checked: a typed error for
        anything but 2xx. A 401 is tried once more if the credentials changed
        since (a rotated token): the server did nothing with the refused one."""
        connection = self.connection
        url = connection.base_url + path
        for attempt in (1, 2):
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type
            authorization = await connection.credentials.header()
            if authorization:
                headers["Authorization"] = authorization
            response = await connection.session.request(
                method,
                url,
                params=query or None,
                data=body,
                headers=headers,
                proxy=connection.proxy,
                server_hostname=connection.server_hostname,
                timeout=timeout,
            )
            answer.status = response.status
            if response.status == 401 and attempt == 1 and connection.credentials.rejected():
                response.release()
                continue
            break
        try:
            if not 200 <= response.status < 300:
                raise error_from_response(
                    response.status, response.reason or "", await response.read()
                )
            yield response
        finally:
            response.release()

    async def _json(
        self,
        verb: str,
        resource: Resource | str,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Query | None = None,
        content_type: str = JSON,
    ) -> Body:
        data = None if body is None else json.dumps(body).encode()
        with self._answer(verb, str(resource), f"{method} {path}") as answer:
            async with self._open(
                method, path, query, answer, self._request, data, content_type=content_type
            ) as response:
                raw = await response.read()
        found: Body = json.loads(raw) if raw else {}
        return found


class _Answer:
    """The HTTP status a request got (0: none)."""

    status = 0


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The stream's newline-ended lines, however its chunks fall.

    Only the new chunk is searched for a newline: a watch event can carry an
    object of etcd's 1.5 MiB, and re-splitting all that was pending at every
    chunk cost its length times its chunks."""
    pending = bytearray()
    async for chunk in content.iter_any():
        start = len(pending)
        pending += chunk
        if pending.find(b"\n", start) < 0:
            continue
        *complete, rest = pending.split(b"\n")
        pending = bytearray(rest)
        for line in complete:
            if line.strip():
                yield bytes(line)
    if pending.strip():
        yield bytes(pending)


def _watch_event(line: bytes) -> WatchEvent:
    """One line of a watch: an event, or the Status of an ``ERROR`` as its typed
    error (410 Gone: the version is too old, list again)."""
    try:
        event = json.loads(line)
    except ValueError:
        raise Unreachable(f"watch sent a line that is not JSON: {line[:200]!r}") from None
    if not isinstance(event, dict) or "type" not in event or "object" not in event:
        raise Unreachable(f"watch sent a line that is not an event: {line[:200]!r}")
    if event["type"] == "ERROR":
        status = event["object"] if isinstance(event["object"], dict) else {}
        code = status.get("code")
        raise error_from_response(
            code if isinstance(code, int) else 500,
            str(status.get("reason") or ""),
            json.dumps(status),
        )
    return cast(WatchEvent, {"type": event["type"], "object": event["object"]})


def _path(resource: Resource, namespace: str | None, name: str | None = None) -> str:
    return _path_of(resource.group, resource.version, namespace, resource.plural, name)


def _path_of(
    group: str, version: str, namespace: str | None, plural: str, name: str | None = None
) -> str:
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    where = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
    named = f"/{quote(name, safe='')}" if name else ""
    return f"{root}{where}/{plural}{named}"


def _query(**params: Any) -> Query:
    """The parameters that are set, as the API server spells them (``true``)."""
    return [
        (key, ("true" if value else "false") if isinstance(value, bool) else str(value))
        for key, value in params.items()
        if value is not None
    ]

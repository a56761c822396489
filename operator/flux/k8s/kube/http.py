""":class:`KubeClient`: the :class:`~flux.k8s.kube.client.Kube` interface on a real
API server, through kubernetes-asyncio.

Requests go out with ``_preload_content=False`` and come back as plain JSON:
decoding responses into the client's model classes (dates and all) cost more
than the requests themselves. Every failure is raised as a typed
:class:`~flux.k8s.kube.errors.KubeError`.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s.kube.client import Body, WatchEvent
from flux.k8s.kube.errors import KubeError, NoCredentials, Unreachable, error_for
from flux.k8s.kube.patch import JsonPatch
from flux.k8s.kube.resources import Resource

KUBECONFIG_ENV = "FLUX_KUBECONFIG"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# Told each request as it ends: verb, resource and the HTTP status (0 unreachable).
RequestObserver = Callable[[str, str, int], None]
Query = list[tuple[str, Any]]
# The environment variables through which aiohttp's trust_env finds a proxy.
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


async def connect() -> client.ApiClient:
    """In a pod, its service account; elsewhere FLUX_KUBECONFIG or the usual kubeconfig."""
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get(KUBECONFIG_ENV):
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(config_file=os.environ.get(KUBECONFIG_ENV))
    except config.ConfigException as exc:
        raise NoCredentials(f"no usable kubeconfig ({exc})") from None
    return client.ApiClient()


def skip_env_lookups(api: client.ApiClient) -> None:
    """Without a proxy in the environment, no per-request look for one.

    kubernetes-asyncio opens its session with ``trust_env=True``, so aiohttp
    sends every request through the thread pool twice, for a proxy in the
    environment and for ~/.netrc credentials (which the Kubernetes clients
    never use): two thread hops a request, a third of the client's CPU a
    request in `benchmarks/RESULTS.md` ("the client's thread hops"). The
    session offers no public switch, hence the attribute; a proxy set in the
    environment is still honoured.
    """
    # Stand-ins for the API client (tests) have no session.
    session = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    if session is None or any(os.environ.get(name) for name in PROXY_ENV):
        return
    if getattr(session, "_trust_env", False):
        session._trust_env = False


def kube_error(exc: ApiException) -> KubeError:
    """The typed error for what the client raised, with the server's own message."""
    return error_from_response(int(exc.status or 0), str(exc.reason or ""), exc.body)


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
        if isinstance(said, dict) and isinstance(said.get("message"), str):
            message = said["message"]
        elif isinstance(said, dict):
            message = ""
        else:
            message = body[:500]
    return error_for(status, message or reason, reason)


class KubeClient:
    """One API server, as the credentials of ``api`` reach it."""

    def __init__(self, api: client.ApiClient, observe: RequestObserver | None = None) -> None:
        self.api = api
        self._observe = observe
        skip_env_lookups(api)
        # Watches need the generated list functions (kubernetes-asyncio's Watch calls one).
        self._custom: Any = client.CustomObjectsApi(api)
        self._core: Any = client.CoreV1Api(api)

    async def close(self) -> None:
        await self.api.close()

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
        raw = await self._request("get", "pods/log", "GET", path, _query(tailLines=tail_lines))
        return raw.decode(errors="replace")

    async def stream_pod_log(self, namespace: str, name: str) -> AsyncIterator[str]:
        path = _path_of("", "v1", namespace, "pods", name) + "/log"
        with self._answer("get", "pods/log", f"log of pod {namespace}/{name}") as answer:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=[("follow", "true")],
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
            answer.status = response.status
            try:
                if not 200 <= response.status < 300:
                    raise error_from_response(
                        response.status, response.reason, await response.read()
                    )
                # Chunks may end inside a character.
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                async for chunk in response.content.iter_any():
                    text = decoder.decode(chunk)
                    if text:
                        yield text
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
            finally:
                response.release()

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
        func, args = self._list_function(resource, namespace)
        kwargs: dict[str, Any] = {"timeout_seconds": timeout_seconds or 300}
        for key, value in (
            ("resource_version", resource_version),
            ("field_selector", field_selector),
            ("label_selector", label_selector),
        ):
            if value is not None:
                kwargs[key] = value
        stream = watch.Watch()
        try:
            async with stream.stream(func, *args, **kwargs) as events:
                async for event in events:
                    raw = event.get("raw_object", event["object"])
                    yield {"type": event["type"], "object": raw}
        except ApiException as exc:
            raise kube_error(exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"watch of {resource.plural} ended: {exc}") from None

    def _list_function(self, resource: Resource, namespace: str) -> tuple[Any, tuple[Any, ...]]:
        if resource.group:
            return self._custom.list_namespaced_custom_object, (
                resource.group,
                resource.version,
                namespace,
                resource.plural,
            )
        return getattr(self._core, f"list_namespaced_{_singular(resource)}"), (namespace,)

    @contextlib.contextmanager
    def _answer(self, verb: str, resource: str, what: str) -> Iterator[_Answer]:
        """Failures of a request as typed errors; its status told to the observer."""
        answer = _Answer()
        try:
            yield answer
        except ApiException as exc:
            answer.status = int(exc.status or 0)
            raise kube_error(exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"{what}: {exc}") from None
        finally:
            if self._observe is not None:
                self._observe(verb, resource, answer.status)

    async def _json(
        self,
        verb: str,
        resource: Resource | str,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Query | None = None,
        content_type: str = "application/json",
    ) -> Body:
        raw = await self._request(verb, str(resource), method, path, query, body, content_type)
        found: Body = json.loads(raw) if raw else {}
        return found

    async def _request(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> bytes:
        with self._answer(verb, resource, f"{method} {path}") as answer:
            response = await self.api.call_api(
                path,
                method,
                query_params=query or None,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
            raw: bytes = await response.read()
            answer.status = response.status
            if not 200 <= response.status < 300:
                raise kube_error(
                    ApiException(status=response.status, reason=response.reason, http_resp=None)
                )
        return raw


class _Answer:
    """The HTTP status a request got (0: none)."""

    status = 0


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
    return [(key, value) for key, value in params.items() if value is not None]


def _singular(resource: Resource) -> str:
    # pods -> pod, configmaps -> config_map, events -> event: the generated names.
    return {"Pod": "pod", "ConfigMap": "config_map", "Event": "event"}[resource.kind]


# Where a pod's service account says which namespace it is in.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def context_namespace() -> str | None:
    """The namespace the credentials :func:`connect` picks name: the current
    kubeconfig context's, or in a pod its own; None when they name none."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get(KUBECONFIG_ENV):
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as file:
                return file.read().strip() or None
        except OSError:
            return None
    try:
        _, current = config.list_kube_config_contexts(config_file=os.environ.get(KUBECONFIG_ENV))
    except Exception:
        # Only a default is at stake: connect() reports what is wrong with the file.
        return None
    namespace = ((current or {}).get("context") or {}).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None

""":class:`FakeKube`: an API server in memory, for unit tests.

It keeps the promises the code relies on: resourceVersions that increase,
409 for a name taken, 404 for one missing, JSON-patch ``test`` operations that
fail the whole write, a status subresource that only status writes change,
selectors, and watches that replay from a resourceVersion (or answer 410 when
it is older than what the fake still remembers). Faults can be injected per
verb and resource. It is not a validator: bodies are stored as given.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

from flux.k8s.kube.client import Body, WatchEvent
from flux.k8s.kube.errors import Conflict, Gone, Invalid, KubeError, NotFound, PatchTestFailed
from flux.k8s.kube.patch import JsonPatch
from flux.k8s.kube.resources import Resource

# Resources whose status only the status subresource changes (as their CRDs
# and the core API declare).
_STATUS_SUBRESOURCE = frozenset({"workflowruns", "workflows", "pods"})
Key = tuple[str, str, str]  # plural, namespace, name


@dataclass
class _Change:
    version: int
    type: str
    plural: str
    namespace: str
    body: Body


@dataclass
class _Fault:
    verb: str
    plural: str
    error: KubeError
    times: int


@dataclass
class FakeKube:
    """Objects by resource, namespace and name; every request is logged in ``requests``."""

    objects: dict[Key, Body] = field(default_factory=dict)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _changes: list[_Change] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _version: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _last: int = 0
    _forgotten_before: int = 0
    _changed: asyncio.Event | None = None
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- test helpers -------------------------------------------------------

    def fail(self, verb: str, resource: Resource | str, error: KubeError, times: int = 1) -> None:
        """Make the next ``times`` requests of ``verb`` on ``resource`` raise ``error``."""
        self._faults.append(_Fault(verb, str(resource), error, times))

    def put(self, resource: Resource, body: Body) -> Body:
        """Store ``body`` as if someone had created it (status included)."""
        meta = body.setdefault("metadata", {})
        key = (resource.plural, meta.get("namespace", ""), meta["name"])
        self._stamp(resource, body, new=key not in self.objects)
        self._record("ADDED" if key not in self.objects else "MODIFIED", resource, body)
        self.objects[key] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def stored(self, resource: Resource, namespace: str, name: str) -> Body | None:
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def all(self, resource: Resource, namespace: str | None = None) -> list[Body]:
        return [
            copy.deepcopy(body)
            for (plural, ns, _), body in self.objects.items()
            if plural == resource.plural and namespace in (None, ns)
        ]

    def forget_changes(self) -> None:
        """Drop the change log, as etcd compacts: older watches get 410 Gone."""
        self._forgotten_before = self._last + 1
        self._changes.clear()

    def count(self, verb: str, resource: Resource | str | None = None) -> int:
        return sum(
            1 for v, r in self.requests if v == verb and (resource is None or r == str(resource))
        )

    # -- the Kube interface -------------------------------------------------

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        self._request("get", resource)
        return copy.deepcopy(self._find(resource, namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Body:
        self._request("list", resource)
        items = [
            body
            for body in self.all(resource, namespace)
            if _labels_match(body, label_selector) and _fields_match(body, field_selector)
        ]
        return {"items": items, "metadata": {"resourceVersion": str(self._last)}}

    async def create(self, resource: Resource, namespace: str, body: Body) -> Body:
        self._request("create", resource)
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{next(self._uids):05x}"
        key = (resource.plural, namespace, meta["name"])
        if key in self.objects:
            raise Conflict(f'{resource.plural} "{meta["name"]}" already exists')
        self._stamp(resource, body, new=True)
        self.objects[key] = body
        self._record("ADDED", resource, body)
        return copy.deepcopy(body)

    async def replace(self, resource: Resource, namespace: str, name: str, body: Body) -> Body:
        self._request("update", resource)
        held = self._find(resource, namespace, name)
        _check_version(resource, held, body)
        new = copy.deepcopy(body)
        new.setdefault("metadata", {}).update(
            {k: held["metadata"][k] for k in ("namespace", "name", "uid", "creationTimestamp")}
        )
        if resource.plural in _STATUS_SUBRESOURCE and "status" in held:
            new["status"] = copy.deepcopy(held["status"])
        return self._store(resource, held, new)

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: JsonPatch | Body,
        *,
        status: bool = False,
    ) -> Body:
        self._request("patch", f"{resource.plural}/status" if status else resource.plural)
        held = self._find(resource, namespace, name)
        if isinstance(patch, JsonPatch):
            try:
                patched = jsonpatch.apply_patch(held, _as_the_api_server_tests(held, patch.ops))
            except jsonpatch.JsonPatchTestFailed as exc:
                raise PatchTestFailed(f"testing value failed: {exc}") from None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise Invalid(f"the server rejected our request: {exc}") from None
        else:
            _check_version(resource, held, patch)
            patched = _merge(held, patch)
        if resource.plural in _STATUS_SUBRESOURCE:
            # A status write changes only status; any other write all but status.
            source, status_from = (held, patched) if status else (patched, held)
            patched = {k: v for k, v in source.items() if k != "status"}
            if "status" in status_from:
                patched["status"] = status_from["status"]
        return self._store(resource, held, patched)

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None:
        self._request("delete", resource)
        held = self._find(resource, namespace, name)
        del self.objects[(resource.plural, namespace, name)]
        gone = copy.deepcopy(held)
        gone["metadata"]["resourceVersion"] = str(self._next_version())
        self._record("DELETED", resource, gone)

    async def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        self._request("get", "pods/log")
        if (namespace, name) not in self.logs:
            self._find(Resource("", "v1", "pods", "Pod"), namespace, name)
            return ""
        lines = self.logs[(namespace, name)].splitlines(keepends=True)
        return "".join(lines[-tail_lines:] if tail_lines else lines)

    async def stream_pod_log(self, namespace: str, name: str) -> AsyncIterator[str]:
        """What ``logs`` holds for the pod as it grows, until the pod's container
        has terminated or the pod is gone."""
        self._request("get", "pods/log")
        pods = Resource("", "v1", "pods", "Pod")
        self._find(pods, namespace, name)
        sent = 0
        while True:
            text = self.logs.get((namespace, name), "")
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            pod = self.objects.get((pods.plural, namespace, name))
            statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
            ended = bool(statuses) and "terminated" in (statuses[0].get("state") or {})
            if pod is None or ended:
                rest = self.logs.get((namespace, name), "")[sent:]
                if rest:
                    yield rest
                return
            await asyncio.sleep(0.01)

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
        self._request("watch", resource)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (300 if timeout_seconds is None else timeout_seconds)

        def wanted(change: _Change) -> bool:
            return (
                change.plural == resource.plural
                and change.namespace == namespace
                and _labels_match(change.body, label_selector)
                and _fields_match(change.body, field_selector)
            )

        if resource_version is None:
            since = self._last
            for body in self.all(resource, namespace):
                if _labels_match(body, label_selector) and _fields_match(body, field_selector):
                    yield {"type": "ADDED", "object": body}
        else:
            since = int(resource_version)
            if since + 1 < self._forgotten_before:
                raise Gone(f"too old resource version: {since} ({self._last})")
        while True:
            for change in [c for c in self._changes if c.version > since]:
                since = change.version
                if wanted(change):
                    event: WatchEvent = {
                        "type": change.type,  # type: ignore[typeddict-item]
                        "object": copy.deepcopy(change.body),
                    }
                    yield event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            changed = self._changed = self._changed or asyncio.Event()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return

    # -- internals ----------------------------------------------------------

    def _request(self, verb: str, resource: Resource | str) -> None:
        self.requests.append((verb, str(resource)))
        for fault in self._faults:
            if fault.verb == verb and fault.plural == str(resource) and fault.times > 0:
                fault.times -= 1
                raise fault.error

    def _find(self, resource: Resource, namespace: str, name: str) -> Body:
        found = self.objects.get((resource.plural, namespace, name))
        if found is None:
            raise NotFound(f'{resource.plural} "{name}" not found')
        return found

    def _next_version(self) -> int:
        self._last = next(self._version)
        return self._last

    def _stamp(self, resource: Resource, body: Body, *, new: bool) -> None:
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._next_version())
        if new:
            meta.setdefault("uid", f"uid-{next(self._uids)}")
            meta.setdefault(
                "creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            if resource.group:
                meta.setdefault("generation", 1)
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)

    def _store(self, resource: Resource, held: Body, new: Body) -> Body:
        if resource.group and new.get("spec") != held.get("spec"):
            new["metadata"]["generation"] = held["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = str(self._next_version())
        meta = new["metadata"]
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = new
        self._record("MODIFIED", resource, new)
        return copy.deepcopy(new)

    def _record(self, kind: str, resource: Resource, body: Body) -> None:
        meta = body["metadata"]
        self._changes.append(
            _Change(
                int(meta["resourceVersion"]),
                kind,
                resource.plural,
                meta.get("namespace", ""),
                copy.deepcopy(body),
            )
        )
        if self._changed is not None:
            self._changed.set()
            self._changed = None


_MISSING = object()


def _as_the_api_server_tests(held: Body, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ops`` without the tests the API server passes and RFC 6902 would fail.

    The API server's JSON patch (evanphx/json-patch) passes a ``test`` for null
    at a path that does not exist: "no status yet" is tested that way on a run
    created without one.
    """
    return [
        op
        for op in ops
        if not (
            op["op"] == "test"
            and op.get("value") is None
            and jsonpointer.resolve_pointer(held, op["path"], _MISSING) is _MISSING
        )
    ]


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch: dicts merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _labels_match(body: Body, selector: str | None) -> bool:
    if not selector:
        return True
    labels = (body.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(body: Body, selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        negate = "!=" in term
        path, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        found: Any = body
        for part in path.strip().split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if (str(found) == value if found is not None else value == "") == negate:
            return False
    return True


def _check_version(resource: Resource, held: Body, body: Body) -> None:
    """As on the API server: a resourceVersion in a replace or merge patch is a
    precondition (none: the write goes through whatever the object's version)."""
    version = (body.get("metadata") or {}).get("resourceVersion")
    if version is not None and version != held["metadata"]["resourceVersion"]:
        name = held["metadata"]["name"]
        raise Conflict(f'the object has been modified; {resource.plural} "{name}"')

"""The real client (flux.k8s.kube.rest) against a real HTTP server on
127.0.0.1: what it sends, how it reads answers, watches and logs, and how it
keeps a pod's rotating token and the cluster's CA."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flux.k8s.kube import (
    CONFIGMAPS,
    PODS,
    RUNS,
    Conflict,
    Forbidden,
    Gone,
    JsonPatch,
    KubeError,
    NotFound,
    PatchTestFailed,
    Unreachable,
)
from flux.k8s.kube.connection import PROXY_ENV, Connection, tls_context
from flux.k8s.kube.incluster import ServiceAccountToken, connect_in_cluster, in_pod
from flux.k8s.kube.rest import KubeClient
from flux.k8s.kube.watch import Listed, follow
from support.apiserver import ApiServer, serve, status_body, write_tls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def ok(request: web.Request) -> web.StreamResponse:
    return web.json_response({"kind": "Thing", "metadata": {"name": "x"}})


def client(server: ApiServer, **observed: Any) -> KubeClient:
    return KubeClient(Connection(server.url, tls_context()), **observed)


def test_requests_go_to_the_resource_paths_with_their_queries_and_bodies() -> None:
    async def scenario() -> ApiServer:
        async with serve(ok) as server:
            kube = client(server)
            try:
                await kube.get(RUNS, "ns", "r1")
                await kube.list(PODS, "ns", label_selector="a=b,c in (d)", field_selector="x=y")
                await kube.list(CONFIGMAPS, None)
                await kube.create(PODS, "ns", {"metadata": {"name": "p"}})
                await kube.replace(CONFIGMAPS, "ns", "c", {"data": {}})
                await kube.delete(PODS, "ns", "p", grace_period_seconds=0)
                await kube.patch(RUNS, "ns", "r1", JsonPatch().add("/status/x", 1), status=True)
                await kube.patch(RUNS, "ns", "r1", {"metadata": {"labels": {"k": "v"}}})
            finally:
                await kube.close()
        return server

    seen = asyncio.run(scenario()).seen
    runs = "/apis/flux.dev/v1alpha1/namespaces/ns/workflowruns"
    assert [(s.method, s.path, s.query) for s in seen] == [
        ("GET", f"{runs}/r1", []),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            [("labelSelector", "a=b,c in (d)"), ("fieldSelector", "x=y")],
        ),
        ("GET", "/api/v1/configmaps", []),
        ("POST", "/api/v1/namespaces/ns/pods", []),
        ("PUT", "/api/v1/namespaces/ns/configmaps/c", []),
        ("DELETE", "/api/v1/namespaces/ns/pods/p", [("gracePeriodSeconds", "0")]),
        ("PATCH", f"{runs}/r1/status", []),
        ("PATCH", f"{runs}/r1", []),
    ]
    assert json.loads(seen[3].body) == {"metadata": {"name": "p"}}
    assert seen[3].content_type == "application/json"
    assert seen[6].content_type == "application/json-patch+json"
    assert json.loads(seen[6].body) == [{"op": "add", "path": "/status/x", "value": 1}]
    assert seen[7].content_type == "application/merge-patch+json"
    assert json.loads(seen[7].body) == {"metadata": {"labels": {"k": "v"}}}
    assert seen[0].body == b"" and seen[0].authorization is None


@pytest.mark.parametrize(
    ("code", "reason", "message", "error"),
    [
        (404, "NotFound", 'workflowruns "r1" not found', NotFound),
        (409, "Conflict", "the object has been modified", Conflict),
        (422, "Invalid", "testing value /status/phase failed", PatchTestFailed),
        (403, "Forbidden", "exceeded quota: pods", Forbidden),
        (500, "InternalError", "etcd is sad", KubeError),
    ],
)
def test_a_refusal_is_the_typed_error_with_the_servers_message(
    code: int, reason: str, message: str, error: type[KubeError]
) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response(status_body(code, reason, message), status=code)

    observed: list[tuple[str, str, int]] = []
    raised = refusal(
        refuse,
        lambda kube: kube.patch(RUNS, "ns", "r1", JsonPatch().add("/a", 1), status=True),
        observed,
    )
    assert type(raised) is error and raised.status == code and raised.message == message
    assert observed == [("patch", "workflowruns/status", code)]


def test_an_error_that_is_not_a_status_keeps_the_reason_or_the_text() -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="upstream connect error")

    raised = refusal(refuse, lambda kube: kube.get(RUNS, "ns", "r1"))
    assert raised.status == 503 and raised.message == "upstream connect error"


def refusal(
    handler: Handler,
    request: Callable[[KubeClient], Awaitable[object]],
    observed: list[tuple[str, str, int]] | None = None,
) -> KubeError:
    """The error ``request`` raises against ``handler``; each request's status into ``observed``."""

    async def scenario() -> KubeError:
        async with serve(handler) as server:
            said = None if observed is None else lambda *status: observed.append(status)
            kube = client(server, observe=said)
            try:
                await request(kube)
            except KubeError as exc:
                return exc
            finally:
                await kube.close()
        raise AssertionError("no error")

    return asyncio.run(scenario())


def test_no_server_is_unreachable_and_observed_as_status_zero() -> None:
    observed: list[tuple[str, str, int]] = []

    async def scenario() -> None:
        # A port just freed: nothing listens there.
        async with serve(ok) as server:
            url = server.url
        kube = KubeClient(Connection(url, tls_context()), lambda *said: observed.append(said))
        try:
            with pytest.raises(Unreachable):
                await kube.get(RUNS, "ns", "r1")
        finally:
            await kube.close()

    asyncio.run(scenario())
    assert observed == [("get", "workflowruns", 0)]


def event(kind: str, name: str, version: str) -> bytes:
    body = {"metadata": {"name": name, "resourceVersion": version}}
    return json.dumps({"type": kind, "object": body}).encode() + b"\n"


def streaming(*pieces: bytes, then_silent: float = 0) -> Handler:
    """A watch answer written in these pieces, each flushed on its own; with
    ``then_silent``, nothing more for that many seconds, the connection kept open
    (what a client sees of a server or node that died under it)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.01)
        if then_silent:
            await asyncio.sleep(then_silent)
            return response
        await response.write_eof()
        return response

    return answer


def test_a_watch_streams_events_however_the_lines_are_cut() -> None:
    first, second = event("ADDED", "a", "5"), event("MODIFIED", "a", "6")
    bookmark = event("BOOKMARK", "", "7")
    # A line split across chunks, two lines in one chunk, a last line without newline.
    handler = streaming(first[:10], first[10:] + second[:3], second[3:] + bookmark[:-1])

    async def scenario() -> tuple[list[tuple[str, str]], ApiServer]:
        async with serve(handler) as server:
            kube = client(server)
            try:
                seen = [
                    (e["type"], e["object"]["metadata"]["resourceVersion"])
                    async for e in kube.watch(
                        RUNS, "ns", resource_version="4", label_selector="k=v", timeout_seconds=9
                    )
                ]
            finally:
                await kube.close()
        return seen, server

    seen, server = asyncio.run(scenario())
    assert seen == [("ADDED", "5"), ("MODIFIED", "6"), ("BOOKMARK", "7")]
    (request,) = server.seen
    assert request.path == "/apis/flux.dev/v1alpha1/namespaces/ns/workflowruns"
    assert dict(request.query) == {
        "watch": "true",
        "resourceVersion": "4",
        "labelSelector": "k=v",
        "timeoutSeconds": "9",
        "allowWatchBookmarks": "true",
    }


@pytest.mark.parametrize(("code", "error"), [(410, Gone), (500, KubeError)])
def test_an_error_event_in_a_watch_is_its_typed_error(code: int, error: type[KubeError]) -> None:
    status = status_body(code, "Expired", "too old resource version: 4 (90)")
    handler = streaming(
        event("ADDED", "a", "5"), json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
    )

    async def scenario() -> list[str]:
        seen: list[str] = []
        async with serve(handler) as server:
            kube = client(server)
            try:
                with pytest.raises(error) as raised:
                    async for e in kube.watch(RUNS, "ns", resource_version="4"):
                        seen.append(e["type"])
            finally:
                await kube.close()
        assert raised.value.status == code and "too old" in raised.value.message
        return seen

    assert asyncio.run(scenario()) == ["ADDED"]


async def followed(
    answer: Handler, count: int, since: str | None = None, **client_options: Any
) -> tuple[list[Any], ApiServer]:
    """The first ``count`` things follow() yields on the real client against ``answer``."""
    async with serve(answer) as server:
        kube = KubeClient(Connection(server.url, tls_context()), **client_options)
        try:
            seen: list[Any] = []
            async with asyncio.timeout(10):
                async for item in follow(kube, RUNS, "ns", since=since):
                    seen.append(item)
                    if len(seen) == count:
                        return seen, server
        finally:
            await kube.close()
    raise AssertionError("follow ended")


def test_follow_on_the_real_client_lists_again_after_gone() -> None:
    gone = json.dumps({"type": "ERROR", "object": status_body(410, "Expired", "old")}).encode()
    watches = iter([streaming(gone + b"\n"), streaming(event("ADDED", "b", "12"))])
    versions = iter(["3", "11"])

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            return await next(watches)(request)
        return web.json_response({"items": [], "metadata": {"resourceVersion": next(versions)}})

    seen, server = asyncio.run(followed(answer, 3))
    assert isinstance(seen[0], Listed) and isinstance(seen[1], Listed)
    assert seen[2]["object"]["metadata"]["name"] == "b"
    assert [dict(s.query).get("resourceVersion") for s in server.seen] == [None, "3", None, "11"]


def test_a_request_left_unanswered_fails_as_unreachable_instead_of_hanging() -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)  # past the client's limit here
        return web.json_response({})

    async def scenario() -> float:
        async with serve(never) as server:
            kube = KubeClient(Connection(server.url, tls_context()), request_seconds=0.3)
            loop = asyncio.get_running_loop()
            began = loop.time()
            try:
                with pytest.raises(Unreachable):
                    await kube.patch(RUNS, "ns", "r1", {"status": {}}, status=True)
                with pytest.raises(Unreachable):
                    await kube.pod_log("ns", "p1")
            finally:
                await kube.close()
            return loop.time() - began

    assert asyncio.run(scenario()) < 5


def test_a_watch_silent_past_its_idle_limit_ends_and_follow_watches_again() -> None:
    watches = iter(
        [streaming(event("ADDED", "a", "5"), then_silent=2), streaming(event("ADDED", "b", "8"))]
    )

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            return await next(watches)(request)
        raise AssertionError("follow() must not list again after a quiet watch")

    seen, server = asyncio.run(followed(answer, 2, since="4", watch_idle_seconds=0.3))
    assert [e["object"]["metadata"]["name"] for e in seen] == ["a", "b"]
    # The second watch starts where the silent one left off.
    assert [dict(s.query).get("resourceVersion") for s in server.seen] == ["4", "5"]


def test_pod_logs_are_read_whole_or_streamed_as_text() -> None:
    text = "héllo\nwörld\n".encode()
    cut = text.index("é".encode()) + 1  # inside the two bytes of é

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.query.get("follow") == "true":
            return await streaming(text[:cut], text[cut:])(request)
        return web.Response(body="wörld\n".encode(), content_type="text/plain")

    async def scenario() -> tuple[str, list[str], ApiServer]:
        async with serve(answer) as server:
            kube = client(server)
            try:
                tail = await kube.pod_log("ns", "p", tail_lines=1)
                streamed = [piece async for piece in kube.stream_pod_log("ns", "p")]
            finally:
                await kube.close()
        return tail, streamed, server

    tail, streamed, server = asyncio.run(scenario())
    assert tail == "wörld\n"
    assert "".join(streamed) == "héllo\nwörld\n"
    assert [(s.path, s.query) for s in server.seen] == [
        ("/api/v1/namespaces/ns/pods/p/log", [("tailLines", "1")]),
        ("/api/v1/namespaces/ns/pods/p/log", [("follow", "true")]),
    ]


def test_a_refused_log_stream_is_its_typed_error() -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        body = status_body(400, "BadRequest", 'container "main" is waiting to start')
        return web.json_response(body, status=400)

    async def scenario() -> None:
        async with serve(refuse) as server:
            kube = client(server)
            try:
                with pytest.raises(KubeError, match="waiting to start"):
                    async for _ in kube.stream_pod_log("ns", "p"):
                        pass
            finally:
                await kube.close()

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_service_account_token_is_read_again_once_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    clock = Clock()
    token = ServiceAccountToken(str(path), clock=clock)
    path.write_text("two")  # the kubelet rotated it
    clock.now = 59.0
    assert asyncio.run(token.header()) == "Bearer one"
    clock.now = 60.0
    assert asyncio.run(token.header()) == "Bearer two"
    path.unlink()  # being replaced: the last one read is kept
    clock.now = 200.0
    assert asyncio.run(token.header()) == "Bearer two"


def accepting(*tokens: str) -> Handler:
    """An API server that knows these tokens (the set may change while it runs)."""
    known = set(tokens)

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") not in {f"Bearer {t}" for t in known}:
            return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)
        return await ok(request)

    answer.known = known  # type: ignore[attr-defined]
    return answer


def test_a_401_reads_the_token_again_and_retries_once_with_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    handler = accepting("new")

    async def scenario() -> list[str | None]:
        async with serve(handler) as server:
            connection = Connection(server.url, tls_context(), ServiceAccountToken(str(path)))
            kube = KubeClient(connection)
            try:
                path.write_text("new")  # rotated within the minute the old one is kept
                await kube.create(PODS, "ns", {"metadata": {"name": "p"}})
                # Refused with the token still on file: no second try.
                handler.known.clear()  # type: ignore[attr-defined]
                with pytest.raises(Forbidden):
                    await kube.get(PODS, "ns", "p")
            finally:
                await kube.close()
        return [s.authorization for s in server.seen]

    assert asyncio.run(scenario()) == ["Bearer old", "Bearer new", "Bearer new"]


def test_in_a_pod_the_service_account_token_and_ca_reach_an_https_server(
    tmp_path: Path,
) -> None:
    ca_file, server_tls = write_tls(tmp_path)
    (tmp_path / "token").write_text("sa-token\n")

    async def scenario() -> ApiServer:
        async with serve(accepting("sa-token"), server_tls) as server:
            port = server.url.rsplit(":", 1)[1]
            env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
            kube = KubeClient(connect_in_cluster(env, str(tmp_path)))
            try:
                await kube.get(RUNS, "ns", "r1")
            finally:
                await kube.close()
            # Another CA does not do.
            other = tmp_path / "other"
            other.mkdir()
            write_tls(other)
            (other / "token").write_text("sa-token")
            stranger = KubeClient(connect_in_cluster(env, str(other)))
            try:
                with pytest.raises(Unreachable, match="certificate"):
                    await stranger.get(RUNS, "ns", "r1")
            finally:
                await stranger.close()
        return server

    server = asyncio.run(scenario())
    assert [s.authorization for s in server.seen] == ["Bearer sa-token"]
    assert ca_file.exists()


def test_the_service_account_is_used_only_in_a_pod_without_a_kubeconfig_named() -> None:
    assert in_pod({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not in_pod({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "FLUX_KUBECONFIG": "/k"})
    assert not in_pod({})


@pytest.mark.parametrize("proxy", [None, "http://proxy.example:3128"])
def test_the_session_looks_for_a_proxy_per_request_only_when_one_is_set(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    """A session trusting the environment costs two thread-pool hops a request
    (proxy and ~/.netrc look-ups): only when a proxy is set."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)

    async def scenario() -> bool:
        connection = Connection("http://127.0.0.1:1", tls_context())
        try:
            return connection.session.trust_env
        finally:
            await connection.close()

    assert asyncio.run(scenario()) is bool(proxy)


def write_kubeconfig(directory: Path, server: str, user: dict[str, Any]) -> Path:
    """A kubeconfig with one context: ``server`` as ``user``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = directory / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def test_a_kubeconfig_user_token_and_server_are_used(tmp_path: Path) -> None:
    from flux.k8s.kube.kubeconfig import connect_kubeconfig

    async def scenario() -> ApiServer:
        async with serve(accepting("from-kubeconfig")) as server:
            path = write_kubeconfig(tmp_path, server.url, {"token": "from-kubeconfig"})
            kube = KubeClient(await connect_kubeconfig(str(path)))
            try:
                await kube.get(RUNS, "ns", "r1")
            finally:
                await kube.close()
        return server

    assert [s.authorization for s in asyncio.run(scenario()).seen] == ["Bearer from-kubeconfig"]


def test_tls_context_without_verification_accepts_any_server() -> None:
    context = tls_context(verify=False)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_tls_context_can_leave_out_the_strict_x509_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    default = ssl.create_default_context

    def as_python_313(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = default(*args, **kwargs)
        context.verify_flags |= ssl.VERIFY_X509_STRICT  # 3.13's default
        return context

    monkeypatch.setattr(ssl, "create_default_context", as_python_313)
    assert tls_context().verify_flags & ssl.VERIFY_X509_STRICT
    assert not tls_context(strict=False).verify_flags & ssl.VERIFY_X509_STRICT


def test_an_exec_plugin_token_is_asked_for_again_after_a_401(tmp_path: Path) -> None:
    """Exec plugins hand out short-lived tokens: a refused one is replaced."""
    from flux.k8s.kube.kubeconfig import connect_kubeconfig

    current = tmp_path / "current"
    current.write_text("first")
    plugin = (
        "import json, sys; print(json.dumps({'apiVersion': "
        "'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential', "
        f"'status': {{'token': open({str(current)!r}).read()}}}}))"
    )
    handler = accepting("first")

    async def scenario() -> ApiServer:
        async with serve(handler) as server:
            user = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": sys.executable,
                    "args": ["-c", plugin],
                }
            }
            path = write_kubeconfig(tmp_path, server.url, user)
            kube = KubeClient(await connect_kubeconfig(str(path)))
            try:
                await kube.get(RUNS, "ns", "r1")
                current.write_text("second")  # the old one expired
                handler.known.clear()  # type: ignore[attr-defined]
                handler.known.add("second")  # type: ignore[attr-defined]
                await kube.get(RUNS, "ns", "r1")
            finally:
                await kube.close()
        return server

    seen = [s.authorization for s in asyncio.run(scenario()).seen]
    assert seen == ["Bearer first", "Bearer first", "Bearer second"]

"""The console as an ASGI app: server-rendered pages over a :class:`RunSource`.

Starlette routes requests; Jinja2 renders every page with autoescaping on, so
a value from a user (a task's output, a workflow name) is always text, never
markup. The only script is a small same-origin file that refreshes parts of
a page; the Content-Security-Policy allows nothing from anywhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from flux.ui.graph import build_graph
from flux.ui.source import (
    HistoryItem,
    RunNotFound,
    RunQuery,
    RunRow,
    RunSource,
    RunUnreadable,
    WorkflowCount,
)
from flux.ui.sqlite_source import StoreMissing
from flux.ui.summary import local_resume, summarize
from flux.ui.timeline import build_timeline
from flux.ui.values import brief, error_text, event_detail, pretty

HERE = Path(__file__).parent
STATES = ("CREATED", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED")
SINCE = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(days=1), "7d": dt.timedelta(days=7)}
BARS_PER_PAGE = 100
EVENTS_PER_PAGE = 100
# How often the pages of unfinished things refresh themselves (live.js), in ms.
REFRESH_MS = 2000

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pretty=pretty,
        brief=brief,
        error_text=error_text,
        detail=lambda event: event_detail(event.type, event.value),
        segment=lambda text: urllib.parse.quote(str(text), safe=""),
        stamp=_stamp,
        seconds=_seconds,
        percent=lambda part, whole: f"{100 * part / whole:.0f}%" if whole else "-",
    )
    return env


def create_app(
    source: RunSource, *, resume: Callable[[RunRow, str | None], str] = local_resume
) -> Starlette:
    env = _environment()

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            request=request, refresh_ms=REFRESH_MS, states=STATES, **context
        )
        return HTMLResponse(html, status_code=status)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=307)

    def runs(request: Request) -> Response:
        params = request.query_params
        state = params.get("state") or None
        if state is not None and state not in STATES:
            raise HTTPException(400, f"state must be one of {', '.join(STATES)}")
        since_key = params.get("since") or ""
        if since_key and since_key not in SINCE:
            raise HTTPException(400, f"since must be one of {', '.join(SINCE)}")
        since = dt.datetime.now(dt.UTC) - SINCE[since_key] if since_key else None
        query = RunQuery(params.get("workflow") or None, state, since, _int_param(params, "page"))
        result = source.list_runs(query)
        template = "_run_rows.html" if params.get("fragment") == "rows" else "runs.html"
        filters = {k: v for k, v in (("workflow", query.workflow), ("state", state)) if v}
        if since_key:
            filters["since"] = since_key
        return page(
            request,
            template,
            result=result,
            query=query,
            since_key=since_key,
            since_choices=list(SINCE),
            workflows=source.workflow_names(),
            filters=filters,
        )

    def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = source.get_run(run_id)
        counts = source.counts(run_id)
        final = record.state in ("COMPLETED", "FAILED", "CANCELLED")
        now = None if final or record.state == "PAUSED" else dt.datetime.now(dt.UTC)
        bars_page = _int_param(request.query_params, "calls")
        # One page of bars, drawn against the whole run's span; the per-task
        # aggregate of every call comes from the store.
        steps = source.call_steps(run_id, (bars_page - 1) * BARS_PER_PAGE, BARS_PER_PAGE)
        page_timeline = build_timeline(
            steps, now, origin=counts.first, until=counts.last, pods=source.pod_stages(run_id)
        )
        timeline = dataclasses.replace(
            page_timeline, groups=source.task_groups(run_id), calls=counts.calls + counts.pauses
        )
        with contextlib.closing(source.moves(run_id)) as moves:
            graph = build_graph(moves, record.state)
        if graph.pending:
            graph.settle(source.outcomes(run_id, graph.pending))
        fragment = request.query_params.get("fragment") == "main"
        return page(
            request,
            "_run_main.html" if fragment else "run.html",
            summary=summarize(record, source.summary_steps(run_id), resume, counts, now),
            timeline=timeline,
            bars=timeline.bars,
            bars_page=bars_page,
            bars_pages=max(1, -(-timeline.calls // BARS_PER_PAGE)),
            graph=graph,
            live=not final and record.state != "PAUSED",
        )

    def events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = source.get_run(run_id)
        after = _int_param(request.query_params, "after", minimum=0, default=0)
        rows = source.events(run_id, after, EVENTS_PER_PAGE + 1)
        return page(
            request,
            "events.html",
            run=record,
            events=rows[:EVENTS_PER_PAGE],
            after=after,
            next_after=rows[EVENTS_PER_PAGE - 1].id if len(rows) > EVENTS_PER_PAGE else None,
            total=source.event_count(run_id),
        )

    def call(request: Request) -> Response:
        run_id, call_id = request.path_params["run_id"], request.path_params["call_id"]
        record = source.get_run(run_id)
        rows = source.call_events(run_id, call_id)
        if not rows:
            raise HTTPException(404, f"run {run_id} has no call {call_id!r}")
        steps = [HistoryItem(e.id, e.type, e.call, e.name, e.time, e.value) for e in rows]
        bars = build_timeline(steps, pods=source.pod_stages(run_id)).bars
        logs = source.call_logs(run_id, call_id)
        return page(
            request, "call.html", run=record, call_id=call_id, events=rows, bars=bars, logs=logs
        )

    def workflows(request: Request) -> Response:
        return page(request, "workflows.html", workflows=_workflow_stats(source.workflow_counts()))

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 404, message=str(exc).strip("'\""))

    async def unreadable(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 410, message=str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page(request, "error.html", exc.status_code, message=exc.detail)

    async def no_store(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 200, message=f"No runs yet: {exc}")

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", home),
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/events", events),
        Route("/runs/{run_id}/calls/{call_id:path}", call),
        Route("/workflows", workflows),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            RunNotFound: not_found,
            RunUnreadable: unreadable,
            HTTPException: http_error,
            StoreMissing: no_store,
        },
    )


def _int_param(params: Any, name: str, *, minimum: int = 1, default: int = 1) -> int:
    text = params.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number") from None
    if value < minimum:
        raise HTTPException(400, f"{name} must be at least {minimum}")
    return value


def _workflow_stats(counts: list[WorkflowCount]) -> list[dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for count in counts:
        entry = stats.setdefault(
            count.workflow, {"name": count.workflow, "runs": 0, "states": {}, "last": count.last}
        )
        entry["runs"] += count.runs
        entry["states"][count.state] = count.runs
        entry["last"] = max(entry["last"], count.last)
    for entry in stats.values():
        states = entry["states"]
        finished = sum(states.get(s, 0) for s in ("COMPLETED", "FAILED", "CANCELLED"))
        entry["finished"] = finished
        entry["succeeded"] = states.get("COMPLETED", 0)
    return sorted(stats.values(), key=lambda e: e["name"])


def _stamp(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"

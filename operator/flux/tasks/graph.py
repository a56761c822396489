"""``Graph``: tasks ordered by a DAG of (optionally conditional) edges."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux.errors import FluxError


class GraphValidationError(FluxError, ValueError):
    """The graph's structure is invalid; the message lists every problem."""

    def __init__(self, graph: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"invalid graph {graph!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    condition: Callable[[Any], Any] | None


_SKIPPED = object()


class Graph:
    def __init__(self, name: str):
        self.name = name
        self._nodes: dict[str, Callable[..., Any]] = {}
        self._edges: list[_Edge] = []
        self._start: str | None = None
        self._ends: list[str] = []

    def add_node(self, name: str, action: Callable[..., Any]) -> Graph:
        if name in self._nodes:
            raise ValueError(f"graph {self.name!r} already has a node {name!r}")
        self._nodes[name] = action
        return self

    def add_edge(
        self, source: str, target: str, condition: Callable[[Any], Any] | None = None
    ) -> Graph:
        self._edges.append(_Edge(source, target, condition))
        return self

    def start_with(self, name: str) -> Graph:
        self._start = name
        return self

    def end_with(self, name: str) -> Graph:
        if name not in self._ends:
            self._ends.append(name)
        return self

    def problems(self) -> list[str]:
        """Every structural problem, in a stable order (empty when valid)."""
        found: list[str] = []
        for edge in self._edges:
            for end in (edge.source, edge.target):
                if end not in self._nodes:
                    found.append(f"edge {edge.source} -> {edge.target} names unknown node {end!r}")
        if self._start is None:
            found.append("no start node (call start_with)")
        elif self._start not in self._nodes:
            found.append(f"start node {self._start!r} is not a node")
        if not self._ends:
            found.append("no end node (call end_with)")
        found.extend(f"end node {e!r} is not a node" for e in self._ends if e not in self._nodes)
        if self._start in self._nodes:
            reachable = self._reachable(self._start)
            found.extend(
                f"node {n!r} is unreachable from start {self._start!r}"
                for n in self._nodes
                if n not in reachable
            )
        cycle = self._find_cycle()
        if cycle:
            found.append("cycle " + " -> ".join(cycle))
        return found

    def validate(self) -> Graph:
        found = self.problems()
        if found:
            raise GraphValidationError(self.name, found)
        return self

    def _successors(self, name: str) -> list[str]:
        return [e.target for e in self._edges if e.source == name and e.target in self._nodes]

    def _reachable(self, start: str) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self._successors(stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def _find_cycle(self) -> list[str] | None:
        color: dict[str, int] = {}
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            color[node] = 1
            path.append(node)
            for nxt in self._successors(node):
                if color.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in color:
                    found = visit(nxt)
                    if found:
                        return found
            path.pop()
            color[node] = 2
            return None

        for node in self._nodes:
            if node not in color:
                found = visit(node)
                if found:
                    return found
        return None

    async def __call__(self, input: Any = None) -> Any:
        self.validate()
        assert self._start is not None
        incoming: dict[str, list[_Edge]] = {n: [] for n in self._nodes}
        for edge in self._edges:
            incoming[edge.target].append(edge)
        results: dict[str, Any] = {}
        running: dict[str, asyncio.Task[Any]] = {}

        def start_ready() -> None:
            # Scan nodes in insertion order so the order of calls is deterministic.
            for name in self._nodes:
                if name in results or name in running:
                    continue
                if name == self._start:
                    running[name] = asyncio.ensure_future(self._run_node(name, input))
                    continue
                edges = incoming[name]
                if not edges or any(e.source not in results for e in edges):
                    continue
                running[name] = asyncio.ensure_future(self._enter(name, edges, results))

        start_ready()
        try:
            while running:
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for name in [n for n, t in running.items() if t in done]:
                    results[name] = running.pop(name).result()
                start_ready()
        except BaseException:
            for pending in running.values():
                pending.cancel()
            raise
        ran = [e for e in self._ends if results.get(e, _SKIPPED) is not _SKIPPED]
        if not ran:
            return None
        if len(ran) == 1:
            return results[ran[0]]
        return {e: results[e] for e in ran}

    async def _enter(self, name: str, edges: list[_Edge], results: dict[str, Any]) -> Any:
        """Run ``name`` if every incoming edge is satisfied, else mark it skipped."""
        for edge in edges:
            upstream = results[edge.source]
            if upstream is _SKIPPED:
                return _SKIPPED
            if edge.condition is not None and not await _maybe_await(edge.condition(upstream)):
                return _SKIPPED
        if len(edges) == 1:
            value = results[edges[0].source]
        else:
            value = {e.source: results[e.source] for e in edges}
        return await self._run_node(name, value)

    async def _run_node(self, name: str, value: Any) -> Any:
        return await _maybe_await(self._nodes[name](value))


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value

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

    def _adjacency(self) -> dict[str, list[str]]:
        adjacency: dict[str, list[str]] = {n: [] for n in self._nodes}
        for edge in self._edges:
            if edge.source in adjacency and edge.target in self._nodes:
                adjacency[edge.source].append(edge.target)
        return adjacency

    def _reachable(self, start: str) -> set[str]:
        adjacency = self._adjacency()
        seen = {start}
        stack = [start]
        while stack:
            for nxt in adjacency[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def _find_cycle(self) -> list[str] | None:
        """A cycle as a path that returns to its first node; iterative, for long chains."""
        adjacency = self._adjacency()
        finished: set[str] = set()
        for root in self._nodes:
            if root in finished:
                continue
            path: list[str] = [root]
            on_path = {root}
            iterators = [iter(adjacency[root])]
            while iterators:
                nxt = next(iterators[-1], None)
                if nxt is None:
                    iterators.pop()
                    done = path.pop()
                    on_path.discard(done)
                    finished.add(done)
                elif nxt in on_path:
                    return [*path[path.index(nxt) :], nxt]
                elif nxt not in finished:
                    path.append(nxt)
                    on_path.add(nxt)
                    iterators.append(iter(adjacency[nxt]))
        return None

    async def __call__(self, input: Any = None) -> Any:
        self.validate()
        assert self._start is not None
        incoming: dict[str, list[_Edge]] = {n: [] for n in self._nodes}
        outgoing: dict[str, list[str]] = {n: [] for n in self._nodes}
        for edge in self._edges:
            incoming[edge.target].append(edge)
            if edge.target not in outgoing[edge.source]:
                outgoing[edge.source].append(edge.target)
        waiting = {n: len({e.source for e in incoming[n]}) for n in self._nodes}
        order = {name: i for i, name in enumerate(self._nodes)}
        results: dict[str, Any] = {}
        running: dict[asyncio.Future[Any], str] = {
            asyncio.ensure_future(self._run_node(self._start, input)): self._start
        }
        try:
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                # Handle completions in node order so the order of calls is deterministic.
                for future in sorted(done, key=lambda f: order[running[f]]):
                    name = running.pop(future)
                    results[name] = future.result()
                    for target in outgoing[name]:
                        waiting[target] -= 1
                        if waiting[target] == 0:
                            entered = self._enter(target, incoming[target], results)
                            running[asyncio.ensure_future(entered)] = target
        except BaseException:
            for pending in running:
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

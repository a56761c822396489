"""The calls of a run as it executed them, as a layered graph.

History has no explicit structure, but it records when the workflow started
each call: every call started by one workflow step (no outcome in between) ran
side by side, so one step is one layer, and its calls of the same task (a
``map``) are one node. An edge goes from the calls whose outcomes woke the
workflow to the calls it then started: "this ran because that finished".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

MAX_NODES_PER_LAYER = 12
MAX_LAYERS = 150
NODE_WIDTH = 180
NODE_HEIGHT = 46
GAP_X = 24
GAP_Y = 44

_STARTS = ("TASK_STARTED", "TASK_PAUSED")
_OUTCOMES = {
    "TASK_COMPLETED": "completed",
    "TASK_FAILED": "failed",
    "TASK_CANCELLED": "cancelled",
    "TASK_RESUMED": "completed",
}
_STATE_ENDS = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "PAUSED": "paused",
}
_RUN_ENDS = {
    "WORKFLOW_COMPLETED": "completed",
    "WORKFLOW_FAILED": "failed",
    "WORKFLOW_CANCELLED": "cancelled",
    "WORKFLOW_PAUSED": "paused",
}


class Event(Protocol):
    """What the graph reads of an event (a :class:`flux.ui.source.HistoryItem` or ``Move``)."""

    @property
    def type(self) -> str: ...

    @property
    def call(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass
class Node:
    id: str
    label: str
    layer: int
    first_call: str = ""
    calls: int = 0
    # How many calls of this node ended each way; the rest are still open.
    statuses: dict[str, int] = field(default_factory=dict)
    open_status: str = "running"
    x: int = 0
    y: int = 0

    @property
    def status(self) -> str:
        """The worst outcome among the node's calls, as its colour shows it."""
        for status in ("failed", "cancelled"):
            if self.statuses.get(status):
                return status
        if sum(self.statuses.values()) < self.calls:
            return self.open_status
        return "completed" if self.calls else self.open_status


@dataclass
class Layer:
    nodes: list[Node]
    calls: int = 0

    @property
    def fan_out(self) -> bool:
        return self.calls > 1


@dataclass
class RunGraph:
    layers: list[Layer]
    edges: list[tuple[str, str]]
    # More steps followed the layers drawn; reading stopped there.
    truncated: bool = False
    # Drawn calls whose outcomes were not read (after a truncation): see settle().
    pending: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    _node_of_call: dict[str, Node] = field(default_factory=dict, repr=False)

    def node(self, node_id: str) -> Node:
        return next(n for layer in self.layers for n in layer.nodes if n.id == node_id)

    @property
    def drawn_calls(self) -> int:
        return sum(layer.calls for layer in self.layers)

    def settle(self, outcomes: Iterable[Event]) -> None:
        """Record the outcomes of :attr:`pending` calls, read separately."""
        for event in outcomes:
            node = self._node_of_call.get(event.call)
            if node is not None and event.type in _OUTCOMES:
                status = _OUTCOMES[event.type]
                node.statuses[status] = node.statuses.get(status, 0) + 1
        self.pending = []

    def lines(self) -> list[tuple[int, int, int, int]]:
        """Each edge from the bottom of its source node to the top of its target."""
        where = {n.id: n for layer in self.layers for n in layer.nodes}
        lines = []
        for source, target in self.edges:
            a, b = where[source], where[target]
            lines.append((a.x + NODE_WIDTH // 2, a.y + NODE_HEIGHT, b.x + NODE_WIDTH // 2, b.y))
        return lines


def build_graph(events: Iterable[Event], run_state: str) -> RunGraph:
    """The graph of the first :data:`MAX_LAYERS` steps. ``events`` is read only
    that far: a sequential run of 50,000 calls costs its first few hundred events."""
    start = Node("start", "start", 0, open_status="completed")
    layers: list[Layer] = [Layer([start])]
    node_of_call: dict[str, Node] = {}
    settled: set[str] = set()
    edges: dict[tuple[str, str], None] = {}
    woke: dict[str, Node] = {}  # nodes whose outcomes came since the workflow last stepped
    in_step = truncated = False
    layer_preds: list[Node] = []
    end_status: str | None = None
    for event in events:
        kind = event.type
        if kind in _STARTS and event.call not in node_of_call:
            if not in_step:
                if len(layers) > MAX_LAYERS:
                    truncated = True
                    break
                in_step = True
                layer_preds = list(woke.values()) or [_last_nodes(layers)]
                woke = {}
                layers.append(Layer([]))
            layer = layers[-1]
            node = _node_for(layer, len(layers) - 1, event)
            node.calls += 1
            layer.calls += 1
            if kind == "TASK_PAUSED":
                node.open_status = "paused"
            node_of_call[event.call] = node
            for pred in layer_preds:
                edges[(pred.id, node.id)] = None
        elif kind in _OUTCOMES:
            in_step = False
            done = node_of_call.get(event.call)
            if done is not None:
                status = _OUTCOMES[kind]
                done.statuses[status] = done.statuses.get(status, 0) + 1
                settled.add(event.call)
                woke[done.id] = done
        elif kind.startswith("WORKFLOW_"):
            in_step = False
            if kind in _RUN_ENDS:
                end_status = _RUN_ENDS[kind]
            elif kind == "WORKFLOW_RESUMED":
                end_status = None
    if truncated:
        end_status = _STATE_ENDS.get(run_state)
    elif run_state in ("COMPLETED", "FAILED", "CANCELLED"):
        end_status = end_status or run_state.lower()
    if end_status is not None:
        end = Node("end", end_status, len(layers), open_status=end_status)
        # After a truncation the end's predecessors are not drawn: no edge.
        for pred in [] if truncated else list(woke.values()) or [_last_nodes(layers)]:
            edges[(pred.id, "end")] = None
        layers.append(Layer([end]))
    pending = [call for call in node_of_call if call not in settled] if truncated else []
    graph = RunGraph(layers, list(edges), truncated, pending, _node_of_call=node_of_call)
    _layout(graph)
    return graph


def _node_for(layer: Layer, index: int, step: Event) -> Node:
    for node in layer.nodes:
        if node.label == step.name:
            return node
    if len(layer.nodes) >= MAX_NODES_PER_LAYER:
        # Too many different tasks side by side to draw: the rest share one node.
        last = layer.nodes[-1]
        if last.id.endswith("-more"):
            return last
        more = Node(f"L{index}-more", "other tasks", index, first_call=step.call)
        layer.nodes.append(more)
        return more
    node = Node(f"L{index}-{len(layer.nodes)}", step.name, index, first_call=step.call)
    layer.nodes.append(node)
    return node


def _last_nodes(layers: list[Layer]) -> Node:
    # With nothing woken (the first call, or after a resume), the previous layer leads on.
    return layers[-1].nodes[0] if layers[-1].nodes else layers[0].nodes[0]


def _layout(graph: RunGraph) -> None:
    widest = max(len(layer.nodes) for layer in graph.layers)
    graph.width = widest * (NODE_WIDTH + GAP_X) + GAP_X
    for row, layer in enumerate(graph.layers):
        used = len(layer.nodes) * (NODE_WIDTH + GAP_X) - GAP_X
        left = (graph.width - used) // 2
        for column, node in enumerate(layer.nodes):
            node.x = left + column * (NODE_WIDTH + GAP_X)
            node.y = GAP_Y // 2 + row * (NODE_HEIGHT + GAP_Y)
    graph.height = len(graph.layers) * (NODE_HEIGHT + GAP_Y)

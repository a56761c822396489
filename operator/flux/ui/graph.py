"""The calls of a run as it executed them, as a layered graph.

History has no explicit structure, but it records when the workflow started
each call: every call started by one workflow step (no outcome in between) ran
side by side, so one step is one layer, and its calls of the same task (a
``map``) are one node. An edge goes from the calls whose outcomes woke the
workflow to the calls it then started: "this ran because that finished".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flux.ui.source import Step

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
_RUN_ENDS = {
    "WORKFLOW_COMPLETED": "completed",
    "WORKFLOW_FAILED": "failed",
    "WORKFLOW_CANCELLED": "cancelled",
    "WORKFLOW_PAUSED": "paused",
}


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
    hidden_layers: int = 0
    width: int = 0
    height: int = 0

    def node(self, node_id: str) -> Node:
        return next(n for layer in self.layers for n in layer.nodes if n.id == node_id)

    def lines(self) -> list[tuple[int, int, int, int]]:
        """Each edge from the bottom of its source node to the top of its target."""
        where = {n.id: n for layer in self.layers for n in layer.nodes}
        lines = []
        for source, target in self.edges:
            a, b = where[source], where[target]
            lines.append((a.x + NODE_WIDTH // 2, a.y + NODE_HEIGHT, b.x + NODE_WIDTH // 2, b.y))
        return lines


def build_graph(steps: list[Step], run_state: str) -> RunGraph:
    start = Node("start", "start", 0, open_status="completed")
    layers: list[Layer] = [Layer([start])]
    node_of_call: dict[str, Node] = {}
    edges: dict[tuple[str, str], None] = {}
    woke: dict[str, Node] = {}  # nodes whose outcomes came since the workflow last stepped
    in_step = False
    layer_preds: list[Node] = []
    end_status: str | None = None
    for step in steps:
        if step.type in _STARTS and step.call not in node_of_call:
            if not in_step:
                predecessors = list(woke.values()) or [_last_nodes(layers)]
                woke = {}
                layers.append(Layer([]))
                layer_preds = predecessors
            layer = layers[-1]
            node = _node_for(layer, len(layers) - 1, step)
            node.calls += 1
            layer.calls += 1
            if step.type == "TASK_PAUSED":
                node.open_status = "paused"
            node_of_call[step.call] = node
            for pred in layer_preds:
                edges[(pred.id, node.id)] = None
            in_step = True
        elif step.type in _OUTCOMES and step.call in node_of_call:
            node = node_of_call[step.call]
            status = _OUTCOMES[step.type]
            node.statuses[status] = node.statuses.get(status, 0) + 1
            woke[node.id] = node
            in_step = False
        elif step.type.startswith("WORKFLOW_"):
            in_step = False
            if step.type in _RUN_ENDS:
                end_status = _RUN_ENDS[step.type]
            elif step.type == "WORKFLOW_RESUMED":
                end_status = None
    if end_status is not None or run_state in ("COMPLETED", "FAILED", "CANCELLED"):
        status = end_status or run_state.lower()
        end = Node("end", status, len(layers), open_status=status)
        for pred in list(woke.values()) or [_last_nodes(layers)]:
            edges[(pred.id, "end")] = None
        layers.append(Layer([end]))
    graph = RunGraph(layers, list(edges))
    _trim(graph)
    _layout(graph)
    return graph


def _node_for(layer: Layer, index: int, step: Step) -> Node:
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


def _trim(graph: RunGraph) -> None:
    """Keep the first layers and the last one (the end) when a run stepped very often."""
    if len(graph.layers) <= MAX_LAYERS + 1:
        graph.hidden_layers = 0
        return
    kept = graph.layers[:MAX_LAYERS] + graph.layers[-1:]
    graph.hidden_layers = len(graph.layers) - len(kept)
    ids = {n.id for layer in kept for n in layer.nodes}
    graph.edges = [(a, b) for a, b in graph.edges if a in ids and b in ids]
    graph.layers = kept


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

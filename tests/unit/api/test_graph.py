"""Graph structure checks, and graph semantics with plain functions (no executor)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from flux.tasks import Graph, GraphValidationError


def identity(value: Any) -> Any:
    return value


def chain(*names: str) -> Graph:
    graph = Graph("chain")
    for name in names:
        graph.add_node(name, identity)
    for source, target in itertools.pairwise(names):
        graph.add_edge(source, target)
    return graph.start_with(names[0]).end_with(names[-1])


def problems_of(graph: Graph) -> list[str]:
    with pytest.raises(GraphValidationError) as caught:
        graph.validate()
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(error) == f"invalid graph {graph.name!r}: " + "; ".join(error.problems)
    return error.problems


def test_a_valid_graph_validates_and_returns_itself() -> None:
    graph = chain("a", "b", "c")
    assert graph.validate() is graph
    assert graph.problems() == []


def test_an_edge_to_an_unknown_node() -> None:
    graph = chain("a", "b").add_edge("b", "ghost").add_edge("phantom", "a")
    assert problems_of(graph) == [
        "edge b -> ghost names unknown node 'ghost'",
        "edge phantom -> a names unknown node 'phantom'",
    ]


def test_no_start_node() -> None:
    graph = Graph("g").add_node("a", identity).end_with("a")
    assert problems_of(graph) == ["no start node (call start_with)"]


def test_no_end_node() -> None:
    graph = Graph("g").add_node("a", identity).start_with("a")
    assert problems_of(graph) == ["no end node (call end_with)"]


def test_start_and_end_must_be_nodes() -> None:
    graph = Graph("g").add_node("a", identity).start_with("s").end_with("a").end_with("e")
    assert problems_of(graph) == ["start node 's' is not a node", "end node 'e' is not a node"]


def test_unreachable_nodes() -> None:
    graph = chain("a", "b").add_node("island", identity).add_node("rock", identity)
    assert problems_of(graph) == [
        "node 'island' is unreachable from start 'a'",
        "node 'rock' is unreachable from start 'a'",
    ]


def test_a_cycle_is_reported_with_its_path() -> None:
    graph = chain("a", "b", "c", "d").add_edge("d", "b")
    assert problems_of(graph) == ["cycle b -> c -> d -> b"]


def test_a_self_loop_is_a_cycle() -> None:
    graph = chain("a", "b").add_edge("b", "b")
    assert problems_of(graph) == ["cycle b -> b"]


def test_a_conditional_back_edge_is_still_a_cycle() -> None:
    graph = chain("a", "b").add_edge("b", "a", condition=lambda _: False)
    assert problems_of(graph) == ["cycle a -> b -> a"]


def test_every_problem_is_listed_together() -> None:
    graph = (
        Graph("messy")
        .add_node("a", identity)
        .add_node("b", identity)
        .add_node("c", identity)
        .add_edge("a", "nowhere")
        .add_edge("b", "c")
        .add_edge("c", "b")
    )
    assert problems_of(graph) == [
        "edge a -> nowhere names unknown node 'nowhere'",
        "no start node (call start_with)",
        "no end node (call end_with)",
        "cycle b -> c -> b",
    ]
    graph.start_with("a").end_with("c")
    assert problems_of(graph) == [
        "edge a -> nowhere names unknown node 'nowhere'",
        "node 'b' is unreachable from start 'a'",
        "node 'c' is unreachable from start 'a'",
        "cycle b -> c -> b",
    ]


def test_a_duplicate_node_is_refused_at_once() -> None:
    graph = Graph("g").add_node("a", identity)
    with pytest.raises(ValueError, match="already has a node 'a'"):
        graph.add_node("a", identity)


def test_long_chains_validate_without_recursion_limits() -> None:
    names = [f"n{i}" for i in range(5000)]
    assert chain(*names).validate().problems() == []
    looped = chain(*names).add_edge(names[-1], names[0])
    [problem] = problems_of(looped)
    assert problem.startswith("cycle n0 -> n1 -> ") and problem.endswith(" -> n4999 -> n0")


def test_end_with_is_repeatable_and_idempotent() -> None:
    graph = chain("a", "b").end_with("b").end_with("a")
    assert asyncio.run(graph(1)) == {"b": 1, "a": 1}


# ----------------------------------------- semantics, with plain functions


def test_start_gets_the_input_and_one_predecessor_passes_its_output() -> None:
    graph = (
        Graph("g")
        .add_node("double", lambda x: x * 2)
        .add_node("label", lambda x: f"={x}")
        .add_edge("double", "label")
        .start_with("double")
        .end_with("label")
    )
    assert asyncio.run(graph(21)) == "=42"


def test_several_predecessors_pass_a_dict() -> None:
    seen: list[Any] = []
    graph = (
        Graph("g")
        .add_node("a", identity)
        .add_node("b", lambda x: x + 1)
        .add_node("c", lambda x: x + 2)
        .add_node("d", lambda parts: seen.append(parts) or sorted(parts))
        .add_edge("a", "b")
        .add_edge("a", "c")
        .add_edge("b", "d")
        .add_edge("c", "d")
        .start_with("a")
        .end_with("d")
    )
    assert asyncio.run(graph(1)) == ["b", "c"]
    assert seen == [{"b": 2, "c": 3}]


def test_independent_nodes_run_concurrently() -> None:
    started = {"left": asyncio.Event(), "right": asyncio.Event()}

    def node(me: str, other: str) -> Any:
        async def action(value: int) -> str:
            started[me].set()
            # Finishes only once the other node has started: both run at the same time.
            await asyncio.wait_for(started[other].wait(), timeout=10)
            return f"{me}({value})"

        return action

    graph = (
        Graph("g")
        .add_node("start", identity)
        .add_node("left", node("left", "right"))
        .add_node("right", node("right", "left"))
        .add_edge("start", "left")
        .add_edge("start", "right")
        .start_with("start")
        .end_with("left")
        .end_with("right")
    )
    assert asyncio.run(graph(0)) == {"left": "left(0)", "right": "right(0)"}


def test_conditions_may_be_sync_or_async_and_skips_propagate() -> None:
    ran: list[str] = []

    def node(name: str) -> Any:
        def action(value: Any) -> Any:
            ran.append(name)
            return value

        return action

    async def positive(value: int) -> bool:
        return value > 0

    graph = (
        Graph("g")
        .add_node("a", node("a"))
        .add_node("pos", node("pos"))
        .add_node("neg", node("neg"))
        .add_node("after_pos", node("after_pos"))
        .add_node("after_both", node("after_both"))
        .add_edge("a", "pos", condition=positive)
        .add_edge("a", "neg", condition=lambda v: v <= 0)
        .add_edge("pos", "after_pos")
        .add_edge("pos", "after_both")
        .add_edge("neg", "after_both")
        .start_with("a")
        .end_with("after_pos")
        .end_with("neg")
        .end_with("after_both")
    )
    assert asyncio.run(graph(-1)) == -1  # only "neg" of the end nodes ran
    assert ran == ["a", "neg"]
    ran.clear()
    assert asyncio.run(graph(1)) == 1  # only "after_pos"; "after_both" lacks "neg"
    assert ran == ["a", "pos", "after_pos"]


def test_no_end_ran_gives_none() -> None:
    graph = (
        Graph("g")
        .add_node("a", identity)
        .add_node("b", identity)
        .add_edge("a", "b", condition=lambda _: False)
        .start_with("a")
        .end_with("b")
    )
    assert asyncio.run(graph("x")) is None


def test_a_failing_node_fails_the_graph() -> None:
    def explode(value: Any) -> Any:
        raise RuntimeError("node failed")

    graph = (
        Graph("g")
        .add_node("a", identity)
        .add_node("b", explode)
        .add_edge("a", "b")
        .start_with("a")
        .end_with("b")
    )
    with pytest.raises(RuntimeError, match="node failed"):
        asyncio.run(graph(1))


def test_an_invalid_graph_is_not_run() -> None:
    ran: list[Any] = []
    graph = Graph("g").add_node("a", ran.append).start_with("a")
    with pytest.raises(GraphValidationError, match="no end node"):
        asyncio.run(graph(1))
    assert ran == []

"""Composition and built-ins for workflows."""

from flux.tasks.builtins import choice, now, pause, randint, randrange, sleep, uuid4
from flux.tasks.compose import parallel, pipeline
from flux.tasks.graph import Graph, GraphValidationError

__all__ = [
    "Graph",
    "GraphValidationError",
    "choice",
    "now",
    "parallel",
    "pause",
    "pipeline",
    "randint",
    "randrange",
    "sleep",
    "uuid4",
]

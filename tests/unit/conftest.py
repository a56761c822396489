"""Fixtures shared by the unit tests: ``kube`` is the in-memory API server
(:class:`~flux.k8s.kube.fake.FakeKube`, held by :class:`support.drivers.DriverKube`
to the drivers' promise never to rewrite a run); ``runs`` reads and edits the
WorkflowRuns on it as the operator would; ``pipeline_wf`` is the workflow the
drivers' tests drive. The operator's own fixtures are in ``k8s/operator/conftest.py``."""

from __future__ import annotations

from typing import Any

import pytest

from flux.workflow import Workflow
from support.drivers import DriverKube, Runs, doubling_pipeline


@pytest.fixture
def kube() -> DriverKube:
    return DriverKube()


@pytest.fixture
def runs(kube: DriverKube) -> Runs:
    return Runs(kube)


@pytest.fixture
def pipeline_wf() -> Workflow[Any]:
    """Doubles its input twice, then pauses for a decision; returns both."""
    return doubling_pipeline

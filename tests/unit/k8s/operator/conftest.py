"""The operator as ``python -m flux.k8s`` assembles it, on the in-memory API server."""

from __future__ import annotations

import pytest

from flux.k8s.config import OperatorConfig
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.events import COMPONENT, BackgroundEvents
from flux.k8s.operator.reconciler import Reconciler


@pytest.fixture
def operator_config() -> OperatorConfig:
    return OperatorConfig(default_image="flux-runtime:test")


@pytest.fixture
def reconciler(kube: FakeKube, operator_config: OperatorConfig) -> Reconciler:
    """The operator as ``python -m flux.k8s`` assembles it, on ``kube``."""
    return Reconciler(kube, operator_config, BackgroundEvents(EventRecorder(kube, COMPONENT)))

"""A task's own pod settings: checked where the task is declared, recorded with each
call, and checked again as strictly when read back from a (possibly forged) history."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from flux import task
from flux.engine.instance import describe_task
from flux.k8s.models import Resources
from flux.pod_settings import (
    MAX_TOLERATIONS,
    QUANTITY_PATTERN,
    PodSettings,
    quantity_value,
)

GPU_TASK = dict(
    resources={
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2Gi", "nvidia.com/gpu": 1, "ephemeral-storage": "10Gi"},
    },
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "gpu"},
    tolerations=[
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "value": "true", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    image="registry.example.com:5000/ml/trainer:1.2@sha256:" + "a" * 64,
)


def _declare(**options: Any) -> Any:
    return task.with_options(**options)(lambda: None)


def test_settings_given_when_a_task_is_declared_are_recorded_with_its_calls() -> None:
    gpu = _declare(**GPU_TASK)
    recorded = describe_task(gpu)["pod"]
    assert recorded == {
        "resources": GPU_TASK["resources"],
        "nodeSelector": GPU_TASK["node_selector"],
        "tolerations": [
            {"operator": "Exists", "key": "nvidia.com/gpu", "effect": "NoSchedule"},
            {
                "operator": "Equal",
                "key": "spot",
                "value": "true",
                "effect": "NoExecute",
                "tolerationSeconds": 60,
            },
        ],
        "image": GPU_TASK["image"],
    }
    # What history records is read back as the same settings.
    assert PodSettings.from_dict(recorded) == gpu.options.pod_settings


def test_a_task_without_settings_records_no_pod_entry() -> None:
    # Events stay byte-identical to those recorded before the options existed.
    assert "pod" not in describe_task(_declare(retry_max_attempts=1))


def test_only_the_settings_given_are_recorded_and_an_empty_one_is_kept() -> None:
    recorded = describe_task(_declare(node_selector={}, image="python:3.12"))["pod"]
    assert recorded == {"nodeSelector": {}, "image": "python:3.12"}


def test_with_options_on_a_task_keeps_or_replaces_its_settings() -> None:
    gpu = _declare(**GPU_TASK)
    retried = gpu.with_options(retry_max_attempts=3)
    assert retried.options.pod_settings == gpu.options.pod_settings
    smaller = gpu.with_options(resources={"limits": {"memory": "256Mi"}})
    assert smaller.options.pod_settings is not None
    assert smaller.options.pod_settings.resources == {"limits": {"memory": "256Mi"}}
    with pytest.raises(ValueError, match="image"):
        gpu.with_options(image="not an image")


def test_the_settings_are_copied_when_declared() -> None:
    selector = {"pool": "gpu"}
    declared = _declare(node_selector=selector)
    selector["pool"] = "changed"
    assert describe_task(declared)["pod"] == {"nodeSelector": {"pool": "gpu"}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"resources": {"limits": {"memory": "64Q"}}},
            "resources limits['memory'] is not a quantity",
        ),
        ({"resources": {"limits": {"memory": "1Gi\n"}}}, "is not a quantity"),
        ({"resources": {"limits": {"memory": True}}}, "must be a quantity"),
        ({"resources": {"limits": {"memory": 1.5}}}, "must be a quantity"),
        ({"resources": {"limits": {"memory": "-1Gi"}}}, "must not be negative"),
        ({"resources": {"limits": {"cpu": "1e40"}}}, "is too large"),
        ({"resources": {"limits": {"gpu": 1}}}, "unknown resource 'gpu'"),
        ({"resources": {"limits": {"kubernetes.io/foo": 1}}}, "unknown resource"),
        ({"resources": {"limits": {"nvidia.com/gpu": "500m"}}}, "must be a whole number"),
        ({"resources": {"requests": {"nvidia.com/gpu": 1}}}, "must set 'nvidia.com/gpu' in limits"),
        (
            {"resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 2}}},
            "must equal",
        ),
        (
            {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
            "requests['memory'] (2Gi) exceeds limits['memory']",
        ),
        ({"resources": {"claims": [{"name": "x"}]}}, "unknown key(s) claims"),
        ({"resources": ["cpu"]}, "resources must be a mapping"),
        ({"node_selector": {"bad key!": "x"}}, "node_selector has an invalid label key"),
        ({"node_selector": {"pool": "has space"}}, "is not a label value"),
        ({"node_selector": {"pool": 3}}, "is not a label value"),
        ({"node_selector": ["pool"]}, "node_selector must be a mapping"),
        ({"tolerations": {"key": "x"}}, "tolerations must be a list"),
        ({"tolerations": [{"operator": "Maybe", "key": "x"}]}, "operator must be Equal or Exists"),
        ({"tolerations": [{"effect": "NoSchedule"}]}, "without a key must use operator Exists"),
        ({"tolerations": [{"key": "x", "operator": "Exists", "value": "y"}]}, "must have no value"),
        ({"tolerations": [{"key": "x", "effect": "Sometimes"}]}, "effect must be"),
        ({"tolerations": [{"key": "x", "tolerationSeconds": 5}]}, "needs effect NoExecute"),
        ({"tolerations": [{"key": "x", "nodeName": "n1"}]}, "unknown field(s) nodeName"),
        ({"tolerations": [{"operator": "Exists"}] * (MAX_TOLERATIONS + 1)}, "more than 32"),
        ({"image": ""}, "image is not an image reference"),
        ({"image": "busybox; rm -rf /"}, "image is not an image reference"),
        ({"image": "x" * 600}, "image is not an image reference"),
        ({"image": 3}, "image is not an image reference"),
    ],
)
def test_bad_settings_are_refused_where_the_task_is_declared(
    options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match="invalid task options: .*" + re.escape(expected)):
        _declare(**options)


def test_every_bad_setting_is_named_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        _declare(image="a b", node_selector={"": "x"}, retry_max_attempts=0)
    assert "image" in str(raised.value) and "node_selector" in str(raised.value)


@pytest.mark.parametrize(
    "forged",
    [
        "image: evil",
        ["image", "evil"],
        {"securityContext": {"privileged": True}},
        {"image": "ok:1", "volumes": [{"hostPath": {"path": "/"}}]},
        {"resources": {"limits": {"memory": {"$flux": "int", "v": "9" * 40}}}},
        {"nodeSelector": {f"k{i}": "v" for i in range(33)}},
        {"tolerations": [{"key": "x", "operator": "Exists", "effect": "NoExecute"}, "x"]},
        {"image": "busybox\nprivileged: true"},
    ],
)
def test_history_can_carry_nothing_else_into_a_pod_spec(forged: Any) -> None:
    with pytest.raises(ValueError):
        PodSettings.from_dict(forged)


def test_the_quantity_rules_are_the_crds() -> None:
    """One pattern for a quantity, the CRD's: what one accepts, so does the other."""
    assert (
        Resources.model_json_schema()["properties"]["limits"]["additionalProperties"]["pattern"]
        == QUANTITY_PATTERN
    )
    for text in ("1", "500m", "1.5Gi", "2e3", "+3", ".5", "1E", "7Ki"):
        _declare(resources={"limits": {"memory": text}})
        Resources.model_validate({"limits": {"memory": text}})


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1Gi", Decimal(1 << 30)),
        ("1G", Decimal(10**9)),
        ("2e3", Decimal(2000)),
        ("1.5Ki", Decimal(1536)),
        (4, Decimal(4)),
        ("100n", Decimal("1e-7")),
    ],
)
def test_quantities_are_compared_by_what_they_stand_for(
    quantity: str | int, value: Decimal
) -> None:
    assert quantity_value(quantity) == value


def test_requests_up_to_the_limit_in_another_unit_are_fine() -> None:
    _declare(
        resources={
            "requests": {"memory": "1024Mi", "cpu": "1"},
            "limits": {"memory": "1Gi", "cpu": "1000m"},
        }
    )

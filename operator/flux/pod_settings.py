"""A task's own pod settings: resources, node selector, tolerations, image.

Set with ``task.with_options(resources=..., node_selector=..., tolerations=...,
image=...)``; on Kubernetes they replace the Workflow's ``taskDefaults`` for the
pods of that task only, and the embedded executor ignores them. They travel with
each call in its ``TASK_STARTED`` event (``"pod"``), so the operator reads them
from history: :meth:`PodSettings.from_dict` checks that form as strictly as the
options are checked when the task is declared, since a history edited by hand
must not put anything into a pod spec but these fields, typed and bounded.

Pure: no Kubernetes client. The rules are those the API server applies to a
container's resources and a pod's node selector and tolerations, so that a
task declared with settings the API server would refuse fails where it is
declared, not in the operator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# A Kubernetes resource.Quantity written as a string ("500m", "1Gi", "1e3"); the
# CRDs (flux.k8s.models) validate quantities with the same pattern.
_DECIMAL = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
QUANTITY_PATTERN = rf"^[+-]?{_DECIMAL}([KMGTPE]i|[numkMGTPE]|[eE][+-]?{_DECIMAL})?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
_SUFFIXES_LONGEST_FIRST = sorted((s for s in _SUFFIXES if s), key=len, reverse=True)
# The API server keeps quantities in 64 bits.
MAX_QUANTITY = Decimal(2) ** 63

# Bounds: more than any real pod needs, few enough that a forged history cannot
# make a pod spec large.
MAX_RESOURCES = 16
MAX_SELECTOR_LABELS = 32
MAX_TOLERATIONS = 32
MAX_QUANTITY_LENGTH = 64
MAX_IMAGE_LENGTH = 512

STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(rf"(?:(?P<prefix>[^/]+)/)?(?P<name>{_NAME})")
_LABEL_VALUE = re.compile(rf"({_NAME})?")
_HUGEPAGES = re.compile(r"hugepages-(?P<size>.+)")
# A container image reference: [registry[:port]/]path[:tag][@digest]; no spaces.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")

TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
_TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
_RESOURCE_KINDS = ("requests", "limits")

# The names of the settings as task options and as the event records them.
OPTION_NAMES = {
    "resources": "resources",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "image": "image",
}


@dataclass(frozen=True)
class PodSettings:
    """A task's pod settings, validated; a field left None keeps the Workflow's."""

    resources: dict[str, dict[str, str | int]] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: tuple[dict[str, Any], ...] | None = None
    image: str | None = None

    @classmethod
    def from_options(
        cls,
        resources: object = None,
        node_selector: object = None,
        tolerations: object = None,
        image: object = None,
    ) -> PodSettings | None:
        """The settings given to ``task.with_options``, or None when none is given.

        Raises ValueError naming the option and what is wrong with it.
        """
        given = {
            "resources": resources,
            "nodeSelector": node_selector,
            "tolerations": tolerations,
            "image": image,
        }
        return cls._checked({k: v for k, v in given.items() if v is not None}, OPTION_NAMES)

    @classmethod
    def from_dict(cls, data: object) -> PodSettings:
        """Settings as a ``TASK_STARTED`` event records them (hostile data).

        Raises ValueError for anything but the fields :meth:`to_dict` writes,
        each of the type and within the bounds the options allow.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"pod settings must be an object, not {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in OPTION_NAMES)
        if unknown:
            raise ValueError("pod settings: unknown field(s) " + ", ".join(unknown))
        settings = cls._checked(dict(data), {k: k for k in OPTION_NAMES})
        return settings or cls()

    @classmethod
    def _checked(cls, given: dict[str, Any], names: Mapping[str, str]) -> PodSettings | None:
        if not given:
            return None
        problems: list[str] = []

        def check(field: str, checker: Any) -> Any:
            if field not in given:
                return None
            try:
                return checker(given[field])
            except ValueError as exc:
                problems.append(f"{names[field]} {exc}")
                return None

        settings = cls(
            resources=check("resources", _resources),
            node_selector=check("nodeSelector", _node_selector),
            tolerations=check("tolerations", _tolerations),
            image=check("image", _image),
        )
        if problems:
            raise ValueError("invalid task options: " + "; ".join(problems))
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The form a ``TASK_STARTED`` event records: only the fields set."""
        recorded: dict[str, Any] = {}
        if self.resources is not None:
            recorded["resources"] = {k: dict(v) for k, v in self.resources.items()}
        if self.node_selector is not None:
            recorded["nodeSelector"] = dict(self.node_selector)
        if self.tolerations is not None:
            recorded["tolerations"] = [dict(t) for t in self.tolerations]
        if self.image is not None:
            recorded["image"] = self.image
        return recorded


def quantity_value(quantity: str | int) -> Decimal:
    """The number a quantity stands for ("1Gi" → 1073741824, "500m" → 0.5)."""
    if isinstance(quantity, int):
        return Decimal(quantity)
    text = quantity.strip()
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)


def _quantity(value: object, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{where} must be a quantity (an int or a string such as '512Mi')")
    if isinstance(value, str) and (
        len(value) > MAX_QUANTITY_LENGTH or not _QUANTITY.fullmatch(value)
    ):
        raise ValueError(f"{where} is not a quantity: {value!r} (e.g. '500m', '1Gi', 2)")
    try:
        number = quantity_value(value)
    except InvalidOperation:  # the pattern admits only numbers; kept for safety
        raise ValueError(f"{where} is not a quantity: {value!r}") from None
    if number < 0:
        raise ValueError(f"{where} must not be negative: {value!r}")
    if number > MAX_QUANTITY:
        raise ValueError(f"{where} is too large: {value!r}")
    return value


def _resource_name(name: object) -> str:
    """cpu, memory, ephemeral-storage, hugepages-<size>, or a domain-qualified
    extended resource such as nvidia.com/gpu."""
    if not isinstance(name, str):
        raise ValueError(f"has a resource name that is not a string: {name!r}")
    if name in STANDARD_RESOURCES:
        return name
    huge = _HUGEPAGES.fullmatch(name)
    if huge is not None and _QUANTITY.fullmatch(huge["size"]):
        return name
    found = _QUALIFIED_NAME.fullmatch(name)
    prefix = found["prefix"] if found else None
    if (
        found is None
        or prefix is None
        or len(found["name"]) > 63
        or len(prefix) > 253
        or not _DNS_SUBDOMAIN.fullmatch(prefix)
        or prefix == "kubernetes.io"
        or prefix.endswith(".kubernetes.io")
    ):
        raise ValueError(
            f"has an unknown resource {name!r}: use cpu, memory, ephemeral-storage, "
            "hugepages-<size> or an extended resource named <domain>/<name> such as "
            "nvidia.com/gpu"
        )
    return name


def _is_extended(name: str) -> bool:
    return "/" in name


def _resources(value: object) -> dict[str, dict[str, str | int]]:
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping with 'requests' and/or 'limits'")
    unknown = sorted(str(k) for k in value if k not in _RESOURCE_KINDS)
    if unknown:
        raise ValueError(f"has unknown key(s) {', '.join(unknown)}: only 'requests' and 'limits'")
    checked: dict[str, dict[str, str | int]] = {}
    for kind in _RESOURCE_KINDS:
        amounts = value.get(kind)
        if amounts is None:
            continue
        if not isinstance(amounts, Mapping):
            raise ValueError(f"{kind} must be a mapping of resource name to quantity")
        if len(amounts) > MAX_RESOURCES:
            raise ValueError(f"{kind} names more than {MAX_RESOURCES} resources")
        checked[kind] = {
            _resource_name(name): _quantity(amount, f"{kind}[{name!r}]")
            for name, amount in amounts.items()
        }
    requests, limits = checked.get("requests", {}), checked.get("limits", {})
    for name, amount in requests.items():
        if name in limits and quantity_value(amount) > quantity_value(limits[name]):
            raise ValueError(f"requests[{name!r}] ({amount}) exceeds limits[{name!r}]")
    for name in {*requests, *limits}:
        # The API server's rules for resources it cannot overcommit.
        if not (_is_extended(name) or name.startswith("hugepages-")):
            continue
        if name not in limits:
            raise ValueError(f"must set {name!r} in limits (requests alone are refused)")
        if name in requests and quantity_value(requests[name]) != quantity_value(limits[name]):
            raise ValueError(f"requests[{name!r}] must equal limits[{name!r}]")
        if _is_extended(name) and quantity_value(limits[name]) % 1:
            raise ValueError(f"limits[{name!r}] must be a whole number")
    return checked


def _label_key(key: object) -> str:
    found = _QUALIFIED_NAME.fullmatch(key) if isinstance(key, str) else None
    prefix = found["prefix"] if found else None
    if (
        found is None
        or len(found["name"]) > 63
        or (prefix is not None and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)))
    ):
        raise ValueError(f"has an invalid label key {key!r}")
    return str(key)


def _label_value(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{where} is not a label value: {value!r}")
    return value


def _node_selector(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of node label to value")
    if len(value) > MAX_SELECTOR_LABELS:
        raise ValueError(f"has more than {MAX_SELECTOR_LABELS} labels")
    return {_label_key(k): _label_value(v, f"value of {k!r}") for k, v in value.items()}


def _tolerations(value: object) -> tuple[dict[str, Any], ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise ValueError("must be a list of tolerations")
    if len(value) > MAX_TOLERATIONS:
        raise ValueError(f"has more than {MAX_TOLERATIONS} tolerations")
    return tuple(_toleration(t, i) for i, t in enumerate(value))


def _toleration(value: object, index: int) -> dict[str, Any]:
    where = f"item {index}:"
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping (key, operator, value, effect, ...)")
    unknown = sorted(str(k) for k in value if k not in _TOLERATION_FIELDS)
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {', '.join(unknown)}: " + ", ".join(_TOLERATION_FIELDS)
        )
    key, operator = value.get("key", ""), value.get("operator", "Equal")
    toleration_value, effect = value.get("value", ""), value.get("effect", "")
    seconds = value.get("tolerationSeconds")
    if operator not in TOLERATION_OPERATORS:
        raise ValueError(f"{where} operator must be Equal or Exists, not {operator!r}")
    if effect not in TOLERATION_EFFECTS:
        raise ValueError(
            f"{where} effect must be NoSchedule, PreferNoSchedule or NoExecute, not {effect!r}"
        )
    if key != "":
        key = _label_key(key)
    elif operator != "Exists":
        raise ValueError(f"{where} without a key must use operator Exists")
    toleration_value = _label_value(toleration_value, f"{where} value")
    if operator == "Exists" and toleration_value:
        raise ValueError(f"{where} with operator Exists must have no value")
    checked: dict[str, Any] = {"operator": operator}
    if key:
        checked["key"] = key
    if toleration_value:
        checked["value"] = toleration_value
    if effect:
        checked["effect"] = effect
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ValueError(f"{where} tolerationSeconds must be an int")
        if effect != "NoExecute":
            raise ValueError(f"{where} tolerationSeconds needs effect NoExecute")
        checked["tolerationSeconds"] = seconds
    return checked


def _image(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_IMAGE_LENGTH or not _IMAGE.fullmatch(value):
        raise ValueError(f"is not an image reference: {value!r}")
    return value

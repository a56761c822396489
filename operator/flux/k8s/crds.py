"""The CustomResourceDefinitions, generated from the models in :mod:`flux.k8s.models`.

``python -m flux.k8s.crds DIR`` writes them to DIR (``make crds``); with
``--check`` it only says whether the files in DIR are current.

Kubernetes wants a *structural* schema: no ``$ref``, no ``anyOf`` for optional
fields, a ``type`` on every node except those marked free-form or
int-or-string. pydantic's JSON schema is turned into one here.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from flux.k8s.kube.resources import GROUP, RUNS, VERSION, WORKFLOWS
from flux.k8s.models import Workflow, WorkflowRun
from flux.k8s.states import ConditionType

HEADER = "# Generated from operator/flux/k8s/models.py by `make crds`; do not edit.\n"
# Short names and category (`kubectl get fx` lists both kinds) carry an "fx"
# prefix: Argo Workflows, often on the same cluster, has the kind Workflow too and
# takes wf, cwf, cronwf, wftmpl, cwftmpl, wfeb, wfts, wftr and wfat; FluxCD's
# (ks, hr, hc, gitrepo, ...) and its name "flux" are left alone as well.
CATEGORY = "fx"
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
# Keys of pydantic's schema that mean nothing to Kubernetes, or that it would act
# on: a default there is applied by the API server, and the models own defaults.
_DROPPED = frozenset({"title", "default", "$defs"})
_FIRST = ("description", "type", "format", "nullable")
_CONTAINED = frozenset({"required", "properties", "additionalProperties", "items"})


@dataclass(frozen=True)
class Resource:
    model: type[BaseModel]
    plural: str
    short_name: str
    columns: tuple[dict[str, str], ...]
    # Fields a field selector may name (the shared driver watches a Workflow's runs).
    selectable: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


RESOURCES = (
    Resource(
        Workflow,
        WORKFLOWS.plural,
        "fxwf",
        (
            {
                # .value: YAML writes plain strings only.
                "name": ConditionType.READY.value,
                "type": "string",
                "jsonPath": f'.status.conditions[?(@.type=="{ConditionType.READY.value}")].status',
                "description": "Whether runs of the workflow can start.",
            },
            {
                "name": "Revision",
                "type": "string",
                "jsonPath": ".status.revision",
                "description": "The code revision a run starting now records.",
            },
            AGE_COLUMN,
        ),
    ),
    Resource(
        WorkflowRun,
        RUNS.plural,
        "fxrun",
        (
            {
                "name": "Workflow",
                "type": "string",
                "jsonPath": ".spec.workflowRef.name",
                "description": "The Workflow the run executes.",
            },
            {
                "name": "Phase",
                "type": "string",
                "jsonPath": ".status.phase",
                "description": "Where the run stands.",
            },
            {
                "name": "Revision",
                "type": "string",
                "jsonPath": ".status.revision",
                "description": "The code revision the run executes, fixed at its start.",
            },
            AGE_COLUMN,
        ),
        selectable=(".spec.workflowRef.name",),
    ),
)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a Kubernetes structural OpenAPI v3 schema."""
    schema = model.model_json_schema(by_alias=True)
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    # A field's own keys (its description) win over those of the type it refers to.
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_convert(target, defs), **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**_convert(node.pop("allOf")[0], defs), **node}
    if "anyOf" in node:
        node = _optional(node, defs)
    out: dict[str, Any] = {}
    for key, value in sorted(node.items(), key=_reading_order):
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    return out


def _reading_order(item: tuple[str, Any]) -> int:
    """What a node is first, then how it is checked, then what it contains."""
    key = item[0]
    if key in _FIRST:
        return _FIRST.index(key)
    return len(_FIRST) + (key in _CONTAINED)


def _optional(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` (an optional field) as X with ``nullable: true``."""
    choices = node.pop("anyOf")
    kept = [c for c in choices if c != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(choices):
        raise ValueError(f"only X | None unions can be expressed in a CRD, not {choices}")
    inner = _convert(kept[0], defs)
    if "enum" in inner:
        # The API server's validator checks a null against the enum too, which
        # does not list null: the field could never be cleared.
        raise ValueError(f"an optional enum cannot be stored: give it a default ({inner})")
    return {**inner, **node, "nullable": True}


def crd(resource: Resource) -> dict[str, Any]:
    schema = structural_schema(resource.model)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": [resource.short_name],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(resource.columns),
                    **(
                        {"selectableFields": [{"jsonPath": p} for p in resource.selectable]}
                        if resource.selectable
                        else {}
                    ),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render(resource: Resource) -> str:
    body = yaml.safe_dump(crd(resource), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def file_name(resource: Resource) -> str:
    return f"{resource.name}.yaml"


def stale(directory: Path) -> list[str]:
    """What differs between the generated CRDs and the files in ``directory``."""
    problems: list[str] = []
    for resource in RESOURCES:
        path = directory / file_name(resource)
        wanted = render(resource)
        current = path.read_text() if path.exists() else ""
        if current != wanted:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{path} (on disk)",
                f"{path} (generated)",
                n=1,
            )
            problems.append("".join(list(diff)[:40]))
    return problems


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in RESOURCES:
        path = directory / file_name(resource)
        path.write_text(render(resource))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flux.k8s.crds", description="generate the Flux CRDs from the models"
    )
    parser.add_argument("directory", type=Path, help="where the CRD files are (crds)")
    parser.add_argument(
        "--check", action="store_true", help="only check that the files are current"
    )
    args = parser.parse_args(argv)
    if not args.check:
        for path in write(args.directory):
            print(f"wrote {path}")
        return 0
    problems = stale(args.directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("the CRDs are out of date with the models: run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

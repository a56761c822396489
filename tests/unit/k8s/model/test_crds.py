"""The generated CRDs: current, structural, and saying what kubectl needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from flux.k8s import crds
from flux.k8s.states import Phase

REPO = Path(__file__).resolve().parents[4]
BY_KIND = {r.kind: r for r in crds.RESOURCES}
FREE_FORM = {
    "Workflow": {"spec.taskDefaults.tolerations[]", "spec.homeVolume", "spec.schedules[].input"},
    "WorkflowRun": {
        "spec.input",
        "status.output",
        "status.history[].value",
        "status.pause.output",
        "status.resume.input",
        # Written by the operator's task policy and read back by the driver.
        "status.tasks[].output",
        "status.tasks[].error",
        "status.tasks[].triggerError",
        "status.tasks[].steps[].value",
    },
}
NON_STRUCTURAL = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "default"}


def schema_of(kind: str) -> dict[str, Any]:
    version = crds.crd(BY_KIND[kind])["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (``[]`` for list items, ``{}`` for map values)."""
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_the_crd_files_are_up_to_date() -> None:
    problems = crds.stale(REPO / "crds")
    assert not problems, "\n".join(problems) + "\nrun `make crds`"


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_schemas_are_structural(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        assert not NON_STRUCTURAL & node.keys(), (path, node)
        if not (
            node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ):
            assert node.get("type"), f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_only_free_form_fields_keep_unknown_fields(kind: str) -> None:
    preserved = {
        p for p, n in nodes(schema_of(kind)) if n.get("x-kubernetes-preserve-unknown-fields")
    }
    assert preserved == FREE_FORM[kind]


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_every_field_is_described_for_kubectl_explain(kind: str) -> None:
    schema = schema_of(kind)
    # The API server allows nothing but the type on metadata.
    assert schema["properties"]["metadata"] == {"type": "object"}
    for path, node in nodes(schema):
        # Fields, not the values inside a list or map (their field says what they are).
        if path != "metadata" and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_conditions_are_a_map_keyed_by_type(kind: str) -> None:
    conditions = schema_of(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_names_subresources_and_columns() -> None:
    for resource, short, columns in [
        (BY_KIND["Workflow"], "fxwf", ["Ready", "Revision", "Age"]),
        (BY_KIND["WorkflowRun"], "fxrun", ["Workflow", "Phase", "Revision", "Age"]),
    ]:
        spec = crds.crd(resource)["spec"]
        assert spec["group"] == "flux.dev" and spec["scope"] == "Namespaced"
        assert spec["names"]["shortNames"] == [short]
        assert spec["names"]["categories"] == ["fx"]
        (version,) = spec["versions"]
        assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
        assert version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


def test_cross_field_rules_are_cel_validations() -> None:
    spec = schema_of("Workflow")["properties"]["spec"]
    rules = {v["rule"] for v in spec["x-kubernetes-validations"]}
    assert rules == {
        "has(self.entrypoint) != has(self.source)",
        "has(self.source) == has(self.function)",
    }
    assert spec["properties"]["parallelism"]["minimum"] == 1
    run_spec = schema_of("WorkflowRun")["properties"]["spec"]
    assert run_spec["required"] == ["workflowRef"]


def test_optional_fields_are_nullable_and_enums_listed() -> None:
    status = schema_of("WorkflowRun")["properties"]["status"]["properties"]
    assert status["startTime"] == {
        "description": "When the run started.",
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert status["phase"]["enum"] == [p.value for p in Phase]
    assert "nullable" not in status["phase"]


def test_unions_and_optional_enums_are_refused() -> None:
    class Union(BaseModel):
        value: int | str

    class OptionalEnum(BaseModel):
        phase: Phase | None = None

    with pytest.raises(ValueError, match=r"only X \| None"):
        crds.structural_schema(Union)
    with pytest.raises(ValueError, match="optional enum"):
        crds.structural_schema(OptionalEnum)


def test_the_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crds.main(["--check", str(tmp_path)]) == 1
    assert crds.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "workflowruns.flux.dev.yaml",
        "workflows.flux.dev.yaml",
    ]
    assert crds.main(["--check", str(tmp_path)]) == 0
    path = tmp_path / "workflows.flux.dev.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert manifest["metadata"]["name"] == "workflows.flux.dev"
    path.write_text(path.read_text().replace("shortNames", "shortNamez"))
    capsys.readouterr()
    assert crds.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "+    shortNames:" in err and "make crds" in err

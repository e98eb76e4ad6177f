"""The schema → form mapping over every reference schema and the demo models' schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from marketplace.catalog import formspec
from marketplace.catalog.formspec import input_fields, output_spec, parse_submission

# A copy of shared/reference/cog-schemas: schemas as Cog's generators emit them.
REFERENCE = Path(settings.BASE_DIR) / "tests" / "fixtures" / "cog-schemas"
EXAMPLES = Path(settings.BASE_DIR) / "examples"
REFERENCE_FILES = sorted(REFERENCE.glob("*.json"))
EXAMPLE_FILES = sorted(EXAMPLES.glob("*/.cog/openapi_schema.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def widgets(document: dict[str, Any], component: str = "Input") -> dict[str, str]:
    return {f.name: f.widget for f in input_fields(document, component)}


@pytest.mark.parametrize(
    "path", REFERENCE_FILES + EXAMPLE_FILES, ids=lambda p: p.parent.name + "/" + p.name
)
def test_every_schema_maps_every_input_to_a_widget(path: Path) -> None:
    document = load(path)
    schemas = document["components"]["schemas"]
    component = "Input" if "Input" in schemas else "TrainingInput"
    fields = input_fields(document, component)
    assert [f.name for f in fields] == sorted(
        schemas[component]["properties"],
        key=lambda n: schemas[component]["properties"][n].get("x-order", 0),
    )
    known = {
        formspec.SELECT,
        formspec.FILE,
        formspec.FILES,
        formspec.PASSWORD,
        formspec.TEXT,
        formspec.TEXTAREA,
        formspec.SLIDER,
        formspec.NUMBER,
        formspec.CHECKBOX,
        formspec.LIST,
        formspec.JSON,
    }
    assert {f.widget for f in fields} <= known
    required = set(schemas[component].get("required", []))
    assert {f.name for f in fields if f.required} == required
    # Required inputs are never hidden behind "advanced".
    assert not any(f.advanced for f in fields if f.required)


def test_reference_schemas_are_present() -> None:
    assert len(REFERENCE_FILES) >= 7


@pytest.mark.parametrize(
    "name",
    [
        "predict-cog0.13-fastapi.json",
        "predict-cog0.19-static.json",
        "predict-cog0.23-generated.json",
    ],
)
def test_sd_like_predictor_widgets(name: str) -> None:
    document = load(REFERENCE / name)
    assert widgets(document) == {
        "prompt": "textarea",
        "negative_prompt": "textarea",
        "image": "file",
        "mask": "file",
        "width": "slider",
        "guidance": "slider",
        "scheduler": "select",
        "num_outputs": "select",
        "seed": "number",
        "disable_safety": "checkbox",
        "api_key": "password",
        "extra_images": "files",
    }
    fields = {f.name: f for f in input_fields(document)}
    assert fields["scheduler"].choices == ["DDIM", "K_EULER", "DPMSolver"]
    assert fields["scheduler"].default == "K_EULER"
    # Integer enums stay numeric.
    assert fields["num_outputs"].choices == [1, 2, 4]
    assert fields["width"].minimum == 256 and fields["width"].maximum == 2048
    assert fields["width"].step == "1"
    assert fields["guidance"].step == "0.1"
    assert fields["image"].accept == "image/*"
    assert fields["api_key"].secret
    assert [f.name for f in input_fields(document)][:3] == ["prompt", "negative_prompt", "image"]
    # Optional non-text inputs go under "advanced"; text, files and required inputs stay visible.
    advanced = {f.name for f in fields.values() if f.advanced}
    assert advanced == {"width", "guidance", "scheduler", "num_outputs", "seed", "disable_safety"}


def test_nullable_from_static_generator() -> None:
    fields = {f.name: f for f in input_fields(load(REFERENCE / "predict-cog0.19-static.json"))}
    assert fields["negative_prompt"].nullable and not fields["negative_prompt"].required
    assert fields["seed"].nullable


def test_training_schema_uses_training_input() -> None:
    document = load(REFERENCE / "training-hello-train.json")
    assert input_fields(document) == []
    [prefix] = input_fields(document, "TrainingInput")
    assert (prefix.name, prefix.widget, prefix.required) == ("prefix", "textarea", True)
    spec = output_spec(document, "TrainingOutput")
    assert spec.kind == "object"
    assert spec.properties["weights"].kind == "file"


def test_input_types_example_every_widget() -> None:
    document = load(EXAMPLES / "input-types" / ".cog" / "openapi_schema.json")
    assert widgets(document) == {
        "count": "slider",
        "temperature": "slider",
        "shout": "checkbox",
        "color": "select",
        "level": "select",
        "api_token": "password",
        "tags": "list",
        "note": "textarea",
        "name": "text",
        "code": "text",
        "legacy_mode": "checkbox",
    }
    fields = {f.name: f for f in input_fields(document)}
    assert fields["legacy_mode"].deprecated and fields["legacy_mode"].advanced
    assert fields["tags"].default_items == ["alpha", "beta"]
    assert fields["temperature"].step == "0.01"
    assert fields["level"].choices == [1, 2, 3]


def test_missing_x_order_keeps_declaration_order() -> None:
    document = {
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "properties": {
                        "zeta": {"type": "string"},
                        "alpha": {"type": "integer"},
                        "mid": {"type": "boolean"},
                    },
                }
            }
        }
    }
    assert [f.name for f in input_fields(document)] == ["zeta", "alpha", "mid"]
    assert input_fields(document)[0].label == "Zeta"


def test_anyof_union_and_any_become_json() -> None:
    document = {
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "properties": {
                        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "anything": {},
                        "maybe": {
                            "anyOf": [
                                {"type": "integer", "minimum": 0, "maximum": 5},
                                {"type": "null"},
                            ]
                        },
                    },
                }
            }
        }
    }
    fields = {f.name: f for f in input_fields(document)}
    assert fields["either"].widget == "json"
    assert fields["anything"].widget == "json"
    assert fields["maybe"].widget == "slider" and fields["maybe"].nullable


def test_parse_submission_types_values_and_skips_defaults() -> None:
    document = load(EXAMPLES / "input-types" / ".cog" / "openapi_schema.json")
    fields = input_fields(document)
    parsed = parse_submission(
        fields,
        {
            "count": ["7"],
            "temperature": ["0.7"],  # the default: left out
            "shout": ["on"],
            "color": ["blue"],
            "level": ["3"],
            "api_token": ["s3cret"],
            "tags": ["x", "", "y "],
            "note": [""],
            "name": ["Ada"],
            "code": ["AB-12"],
        },
    )
    assert parsed.errors == {}
    assert parsed == {
        "count": 7,
        "shout": True,
        "color": "blue",
        "level": 3,
        "api_token": "s3cret",
        "tags": ["x", "y"],
        "name": "Ada",
    }


def test_parse_submission_reports_unparseable_values() -> None:
    document = load(EXAMPLES / "input-types" / ".cog" / "openapi_schema.json")
    parsed = parse_submission(input_fields(document), {"count": ["2.5"], "temperature": ["hot"]})
    assert parsed.errors == {"count": "Enter a whole number.", "temperature": "Enter a number."}
    assert "count" not in parsed


@pytest.mark.parametrize(
    ("name", "kind", "iterator"),
    [
        ("predict-cog0.13-fastapi.json", "concatenate", True),
        ("runtime-cog0.13-iterator.json", "files", True),
        ("runtime-coglet0.23-streaming.json", "files", True),
        ("minimal-test-image.json", "text", False),
    ],
)
def test_output_specs_of_reference_schemas(name: str, kind: str, iterator: bool) -> None:
    spec = output_spec(load(REFERENCE / name))
    assert (spec.kind, spec.iterator) == (kind, iterator)


def test_output_specs_of_examples() -> None:
    kinds = {path.parent.parent.name: output_spec(load(path)).kind for path in EXAMPLE_FILES}
    assert kinds["image-filter"] == "file"
    assert kinds["text-stream"] == "concatenate"
    assert kinds["hello"] == "text"

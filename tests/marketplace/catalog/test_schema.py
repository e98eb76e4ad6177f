from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketplace.catalog import schema

FIXTURE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "fixtures" / "cog" / "predict_fixture_expected.json"
    ).read_text()
)


def errors_for(payload: object, doc: dict = FIXTURE) -> dict[str, str]:
    _, errors = schema.validate_input(f"test-{id(doc)}", doc, payload)
    return {e.field: e.type for e in errors}


VALID = {"prompt": "a cat", "image": "https://example.com/cat.png", "extra_images": []}


def test_valid_input_has_no_errors() -> None:
    assert errors_for(VALID) == {}


def test_missing_required_inputs_are_named() -> None:
    assert errors_for({"extra_images": []}) == {
        "input.prompt": "required",
        "input.image": "required",
    }


def test_bounds_types_and_enums_are_checked() -> None:
    errors = errors_for(
        {**VALID, "width": 4096, "guidance": "high", "scheduler": "NOPE", "num_outputs": 3}
    )
    assert errors == {
        "input.width": "maximum",
        "input.guidance": "type",
        "input.scheduler": "enum",
        "input.num_outputs": "enum",
    }


def test_minimum_zero_is_enforced() -> None:
    doc = {
        "components": {
            "schemas": {
                "Input": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
            }
        }
    }
    assert errors_for({"n": -1}, doc) == {"input.n": "minimum"}
    assert errors_for({"n": 0}, doc) == {}


def test_unknown_inputs_are_refused() -> None:
    assert errors_for({**VALID, "promt": "typo"}) == {"input.promt": "unknown"}


def test_file_inputs_must_be_urls_or_data_uris() -> None:
    assert errors_for({**VALID, "image": "/etc/passwd"}) == {"input.image": "format"}
    assert errors_for({**VALID, "image": "data:image/png;base64,AAAA"}) == {}


def test_null_for_an_optional_input_means_not_given() -> None:
    normalized, errors = schema.validate_input(
        "nullable", FIXTURE, {**VALID, "seed": None, "mask": None}
    )
    assert errors == []
    assert "seed" not in normalized and "mask" not in normalized


def test_nullable_fields_accept_values_of_their_type() -> None:
    assert errors_for({**VALID, "seed": 42}) == {}
    assert errors_for({**VALID, "seed": "42"}) == {"input.seed": "type"}


def test_input_must_be_an_object() -> None:
    assert errors_for(["not", "an", "object"]) == {"input": "type"}


def test_schema_without_input_component_is_a_schema_error() -> None:
    with pytest.raises(schema.SchemaError):
        schema.validate_input("no-input", {"components": {"schemas": {}}}, {})


def test_secrets_are_found_and_redacted() -> None:
    assert schema.secret_fields(FIXTURE) == ["api_key"]
    redacted = schema.redact(FIXTURE, {"prompt": "x", "api_key": "sk-live-123"})
    assert redacted == {"prompt": "x", "api_key": schema.REDACTED}


def test_iterator_output_is_detected() -> None:
    assert schema.is_iterator_output(FIXTURE)
    assert not schema.is_iterator_output(
        {"components": {"schemas": {"Output": {"type": "string"}}}}
    )


def test_validators_are_compiled_once_per_version() -> None:
    first = schema.input_validator("cached-version", FIXTURE)
    assert schema.input_validator("cached-version", FIXTURE) is first

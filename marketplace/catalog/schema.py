"""The Cog OpenAPI document of a version: input validation and output facts.

Cog emits OpenAPI 3.0 (``nullable``, ``#/components/schemas`` references, ``x-*`` extensions); the
validator wants JSON Schema Draft 7. :func:`input_validator` converts once per version and caches
the compiled validator, because versions are immutable and validation sits on the create path.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import SchemaError as SchemaValidationError
from jsonschema.exceptions import ValidationError

REDACTED = "**********"

_format_checker = FormatChecker(formats=())


@_format_checker.checks("uri", raises=())
def _is_uri(value: object) -> bool:
    # Cog downloads http(s) URLs and decodes data: URIs; nothing else reaches a model.
    if not isinstance(value, str):
        return True
    return value.startswith(("http://", "https://", "data:"))


@dataclass(frozen=True)
class FieldError:
    field: str
    type: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "description": self.description}


class SchemaError(ValueError):
    """The version's OpenAPI document has no usable ``Input`` schema."""


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema Draft 7 (refs, nullable); other keys pass through."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/components/schemas/", "#/definitions/", 1)
        elif key in ("properties", "definitions") and isinstance(value, dict):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if out.pop("nullable", False) is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        elif "enum" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def components(openapi: dict[str, Any]) -> dict[str, Any]:
    return (openapi.get("components") or {}).get("schemas") or {}


def input_properties(openapi: dict[str, Any]) -> dict[str, Any]:
    return (components(openapi).get("Input") or {}).get("properties") or {}


def output_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    return components(openapi).get("Output") or {}


def file_inputs(openapi: dict[str, Any]) -> set[str]:
    """Names of the inputs that take a file (Cog's ``Path``/``File``: ``format: uri``) or a list
    of files."""

    def is_uri(prop: Any) -> bool:
        return isinstance(prop, dict) and prop.get("format") == "uri"

    return {
        name
        for name, prop in input_properties(openapi).items()
        if is_uri(prop) or (isinstance(prop, dict) and is_uri(prop.get("items")))
    }


def is_iterator_output(openapi: dict[str, Any]) -> bool:
    out = output_schema(openapi)
    return out.get("type") == "array" and out.get("x-cog-array-type") == "iterator"


def secret_fields(openapi: dict[str, Any]) -> list[str]:
    return [
        name
        for name, prop in input_properties(openapi).items()
        if isinstance(prop, dict) and (prop.get("x-cog-secret") or prop.get("format") == "password")
    ]


def is_trainable(openapi: dict[str, Any]) -> bool:
    """A model with ``train:`` in its cog.yaml: its document describes ``TrainingInput``."""
    return isinstance(components(openapi).get("TrainingInput"), dict)


_training_views: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


def training_view(openapi: dict[str, Any]) -> dict[str, Any]:
    """The document with ``TrainingInput``/``TrainingOutput`` as its ``Input``/``Output``: every
    rule written for a prediction's input (validation, files, secrets, outbound URLs, redaction)
    then applies to a training's input unchanged. Empty ``Input`` for a model without a trainer."""
    cached = _training_views.get(id(openapi))
    if cached is not None and cached[0] is openapi:
        return cached[1]
    schemas = dict(components(openapi))
    schemas["Input"] = schemas.get("TrainingInput") or {"type": "object", "properties": {}}
    schemas["Output"] = schemas.get("TrainingOutput") or {}
    view = {**openapi, "components": {**(openapi.get("components") or {}), "schemas": schemas}}
    if len(_training_views) > 512:
        _training_views.clear()
    _training_views[id(openapi)] = (openapi, view)
    return view


class VersionCache(OrderedDict[str, Any]):
    """A bounded, least-recently-added cache keyed by version id.

    Versions never change, so anything derived from one can be kept for the process's lifetime;
    the bound only stops a long-running process from holding every version ever seen.
    """

    def __init__(self, size: int = 512):
        super().__init__()
        self.size = size

    def remember(self, key: str, value: Any) -> Any:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


_validators = VersionCache()


def build_input_validator(openapi: dict[str, Any]) -> Draft7Validator:
    schemas = components(openapi)
    if not isinstance(schemas.get("Input"), dict):
        raise SchemaError("The version's schema has no components.schemas.Input")
    input_schema = copy.deepcopy(schemas["Input"])
    # Cog's server silently drops unknown keys; we refuse them so a typo never goes unnoticed.
    input_schema.setdefault("additionalProperties", False)
    doc = _convert(input_schema)
    doc["definitions"] = {name: _convert(sub) for name, sub in schemas.items() if name != "Input"}
    try:
        Draft7Validator.check_schema(doc)
    except SchemaValidationError as exc:
        raise SchemaError(f"The version's Input schema is invalid: {exc.message}") from exc
    return Draft7Validator(doc, format_checker=_format_checker)


def input_validator(key: str, openapi: dict[str, Any]) -> Draft7Validator:
    """The compiled validator for a version; ``key`` is its id (versions never change)."""
    validator = _validators.get(key)
    if validator is None:
        validator = _validators.remember(key, build_input_validator(openapi))
    return validator


def _field_errors(error: ValidationError) -> list[FieldError]:
    if error.validator == "required" and not error.path:
        missing = error.message.split("'")[1] if "'" in error.message else str(error.instance)
        return [FieldError(f"input.{missing}", "required", f"{missing} is required")]
    if error.validator == "additionalProperties" and not error.path:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return [
            FieldError(f"input.{name}", "unknown", f"{name} is not an input of this model")
            for name in extra
        ]
    path = ".".join(str(part) for part in error.absolute_path)
    field = f"input.{path}" if path else "input"
    name = path or "input"
    return [FieldError(field, str(error.validator), f"{name}: {error.message}")]


def validate_input(
    key: str, openapi: dict[str, Any], payload: Any
) -> tuple[dict[str, Any], list[FieldError]]:
    """Validate ``payload`` against the Input schema; return (normalized input, errors).

    ``null`` for an optional field means "not given": Cog's servers reject explicit nulls, so the
    key is dropped rather than forwarded.
    """
    if not isinstance(payload, dict):
        return {}, [FieldError("input", "type", "input must be a JSON object")]
    properties = input_properties(openapi)
    required = set((components(openapi).get("Input") or {}).get("required") or [])
    normalized = {
        k: v
        for k, v in payload.items()
        if not (v is None and k in properties and k not in required)
    }
    validator = input_validator(key, openapi)
    errors = [fe for err in validator.iter_errors(normalized) for fe in _field_errors(err)]
    errors.sort(key=lambda fe: fe.field)
    return normalized, errors


def redact(openapi: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    secrets = set(secret_fields(openapi))
    return {k: (REDACTED if k in secrets and v is not None else v) for k, v in payload.items()}

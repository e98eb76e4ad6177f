"""Hypothesis: generated Cog Input schemas (types, choices as Cog writes them, bounds, defaults,
nullable, lists, files) and generated inputs. ``validate_input`` never raises, and it accepts
exactly what a JSON Schema validator accepts for the same rules written out independently here
(plain Draft 7, no OpenAPI-isms), with the platform's documented extras: unknown fields refused,
``null`` for an optional field dropped, file inputs only http(s) or data: URIs."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from marketplace.catalog.schema import validate_input

_keys = itertools.count()

NAMES = st.sampled_from(["prompt", "seed", "scale", "flag", "mode", "image", "tags", "steps"])
URIS = st.one_of(
    st.sampled_from(["https://e.example/a.png", "http://x/y", "data:text/plain;base64,eA=="]),
    st.sampled_from(["ftp://x/y", "file:///etc/passwd", "javascript:x", "a.png", ""]),
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@st.composite
def field(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Cog's property, the plain JSON Schema of the same rule, extra components) for one input."""
    kind = draw(st.sampled_from(["str", "int", "float", "bool", "choice", "file", "list"]))
    extra: dict[str, Any] = {}
    if kind in ("int", "float"):
        number = "integer" if kind == "int" else "number"
        cog: dict[str, Any] = {"type": number, "title": name.title()}
        plain: dict[str, Any] = {"type": number}
        low = draw(st.none() | st.integers(-100, 100))
        high = draw(st.none() | st.integers(-100, 100))
        if low is not None:
            cog["minimum"] = plain["minimum"] = low
        if high is not None:
            cog["maximum"] = plain["maximum"] = high
    elif kind == "str":
        cog, plain = {"type": "string"}, {"type": "string"}
    elif kind == "bool":
        cog, plain = {"type": "boolean"}, {"type": "boolean"}
    elif kind == "choice":
        values = draw(
            st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4, unique=True)
            | st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True)
        )
        enum_type = "string" if isinstance(values[0], str) else "integer"
        extra[name] = {"title": name, "description": "An enumeration.", "enum": values,
                       "type": enum_type}  # fmt: skip
        cog = {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}
        plain = {"enum": values, "type": enum_type}
    elif kind == "file":
        cog = {"type": "string", "format": "uri"}
        plain = {"type": "string", "pattern": "^(https?://|data:)"}
    else:
        cog = {"type": "array", "items": {"type": "string"}}
        plain = {"type": "array", "items": {"type": "string"}}
    if draw(st.booleans()):
        cog["nullable"] = True
        plain = {"anyOf": [plain, {"type": "null"}]}
    return cog, plain, extra


@st.composite
def schema_and_input(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    properties, plain_properties, components = {}, {}, {}
    required = []
    for name in names:
        cog, plain, extra = draw(field(name))
        if draw(st.booleans()):
            required.append(name)
        properties[name], plain_properties[name] = cog, plain
        components.update(extra)
    openapi = {
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "properties": properties,
                    **({"required": required} if required else {}),
                },
                **components,
            }
        }
    }
    plain_schema = {
        "type": "object",
        "properties": plain_properties,
        "required": required,
        "additionalProperties": False,
    }
    # Inputs: sometimes well-typed values, sometimes anything, sometimes unknown keys.
    payload: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from([*names, "unknown"]), max_size=6, unique=True)):
        payload[name] = draw(
            URIS if "format" in properties.get(name, {}) and draw(st.booleans()) else JSON
        )
    return openapi, plain_schema, payload


def expected_valid(plain_schema: dict[str, Any], payload: dict[str, Any]) -> bool:
    # The documented rule: null for an optional field means "not given".
    optional = set(plain_schema["properties"]) - set(plain_schema["required"])
    given_values = {k: v for k, v in payload.items() if not (v is None and k in optional)}
    return Draft7Validator(plain_schema).is_valid(given_values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_input())
def test_validate_input_agrees_with_plain_json_schema(case: Any) -> None:
    openapi, plain_schema, payload = case
    key = f"fuzz-{next(_keys)}"  # validators are cached per version id
    normalized, errors = validate_input(key, openapi, payload)
    assert (errors == []) == expected_valid(plain_schema, payload), (payload, errors)
    # Every error names a field of the input, and a clean input keeps every given value.
    assert all(e.field == "input" or e.field.startswith("input.") for e in errors)
    if not errors:
        assert all(normalized[k] == v for k, v in payload.items() if v is not None)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_validate_input_never_raises_on_any_json(payload: Any) -> None:
    openapi = {"components": {"schemas": {"Input": {"type": "object", "properties": {}}}}}
    _, errors = validate_input("fuzz-any", openapi, payload)
    assert errors or payload == {}

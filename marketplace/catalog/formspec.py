"""A version's Cog schema → what the web form and the output view draw.

Pure functions over the OpenAPI document (no database, no request): :func:`input_fields` resolves
Cog's idioms (``allOf: [{$ref}]`` enums, ``anyOf`` with null, ``nullable``), orders by ``x-order``
with declaration order as the fallback, and picks a widget per input; :func:`parse_submission`
turns posted form strings back into typed input values; :func:`output_spec` says how to render the
``Output`` schema. The widget table follows cog-contract §6.1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marketplace import jsonsafe
from marketplace.catalog.schema import components

# Widgets a field can have; templates switch on these names.
SELECT = "select"
FILE = "file"
FILES = "files"
PASSWORD = "password"  # noqa: S105 - a widget name, not a secret
TEXT = "text"
TEXTAREA = "textarea"
SLIDER = "slider"
NUMBER = "number"
CHECKBOX = "checkbox"
LIST = "list"
JSON = "json"

# A model with this many inputs or fewer shows them all: hiding two of three helps nobody.
ALWAYS_VISIBLE_UP_TO = 4
# Short, constrained strings get a one-line input; free text gets a textarea.
SINGLE_LINE_MAX_LENGTH = 80


@dataclass
class Field:
    name: str
    label: str
    widget: str
    type: str  # string | integer | number | boolean | array | object | any
    required: bool
    description: str = ""
    default: Any = None
    has_default: bool = False
    nullable: bool = False
    choices: list[Any] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    accept: str = ""
    item_type: str = ""  # for lists: the type of one item
    secret: bool = False
    deprecated: bool = False
    advanced: bool = False
    order: int = 0

    @property
    def default_text(self) -> str:
        """The default as the form shows it (empty when there is none)."""
        return value_text(self, self.default) if self.has_default else ""

    @property
    def default_items(self) -> list[str]:
        if not self.has_default or not isinstance(self.default, list):
            return []
        return [_scalar_text(item) for item in self.default]


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``, single-entry ``allOf`` and ``anyOf [X, null]`` into one flat schema."""
    out: dict[str, Any] = {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        out.update(_resolve(defs.get(ref.rsplit("/", 1)[-1]) or {}, defs))
    for part in schema.get("allOf") or []:
        if isinstance(part, Mapping):
            out.update(_resolve(part, defs))
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        non_null = [s for s in any_of if isinstance(s, Mapping) and s.get("type") != "null"]
        if len(non_null) < len(any_of):
            out["nullable"] = True
        if len(non_null) == 1:
            out.update(_resolve(non_null[0], defs))
        else:
            out["anyOf"] = non_null
    for key, value in schema.items():
        if key not in ("$ref", "allOf", "anyOf"):
            out[key] = value
    return out


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("string", "integer", "number", "boolean", "array", "object"):
        return str(kind)
    if "enum" in schema:
        values = schema["enum"]
        if values and all(isinstance(v, bool) for v in values):
            return "boolean"
        if values and all(isinstance(v, int) for v in values):
            return "integer"
        return "string"
    return "any"


def _guess_accept(name: str) -> str:
    lowered = name.lower()
    for hint, accept in (
        ("image", "image/*"),
        ("mask", "image/*"),
        ("audio", "audio/*"),
        ("video", "video/*"),
    ):
        if hint in lowered:
            return accept
    return ""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _field(name: str, prop: Mapping[str, Any], required: bool, defs: Mapping[str, Any]) -> Field:
    schema = _resolve(prop, defs)
    kind = _type_of(schema)
    f = Field(
        name=name,
        label=str(prop.get("title") or name.replace("_", " ").capitalize()),
        widget=TEXTAREA,
        type=kind,
        required=required,
        description=str(schema.get("description") or ""),
        has_default="default" in schema,
        default=schema.get("default"),
        nullable=bool(schema.get("nullable")) or "null" in (schema.get("type") or []),
        minimum=_number(schema.get("minimum")),
        maximum=_number(schema.get("maximum")),
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        pattern=schema.get("pattern"),
        secret=bool(schema.get("x-cog-secret")) or schema.get("format") == "password",
        deprecated=bool(schema.get("deprecated")),
    )
    if f.has_default and f.default is None:
        # ``default: null`` is how Cog spells "optional": there is nothing to prefill.
        f.has_default = False
    if isinstance(schema.get("enum"), list):
        f.widget, f.choices = SELECT, list(schema["enum"])
    elif f.secret:
        f.widget = PASSWORD
    elif kind == "string" and schema.get("format") == "uri":
        f.widget = FILE
        f.accept = str(schema.get("x-cog-accept") or _guess_accept(name))
    elif kind == "string":
        short = f.max_length is not None and f.max_length <= SINGLE_LINE_MAX_LENGTH
        f.widget = TEXT if short or f.pattern else TEXTAREA
    elif kind in ("integer", "number"):
        bounded = f.minimum is not None and f.maximum is not None
        f.widget = SLIDER if bounded else NUMBER
        f.step = "1" if kind == "integer" else _number_step(f.minimum, f.maximum)
    elif kind == "boolean":
        f.widget = CHECKBOX
    elif kind == "array":
        items = _resolve(schema.get("items") or {}, defs)
        f.item_type = _type_of(items)
        if f.item_type == "string" and items.get("format") == "uri":
            f.widget = FILES
            f.accept = str(items.get("x-cog-accept") or _guess_accept(name))
        elif f.item_type in ("string", "integer", "number"):
            f.widget = LIST
        else:
            f.widget = JSON
    else:
        f.widget = JSON
    return f


def _number_step(minimum: float | None, maximum: float | None) -> str:
    if minimum is None or maximum is None or maximum <= minimum:
        return "any"
    # A hundredth of the range, rounded down to a power of ten: 0-2 → 0.01, 1-20 → 0.1.
    return f"{10 ** math.floor(math.log10((maximum - minimum) / 100)):g}"


def input_fields(openapi: Mapping[str, Any], component: str = "Input") -> list[Field]:
    """The form fields of a version's ``Input`` (or ``TrainingInput``) schema, in display order."""
    defs = components(dict(openapi))
    schema = defs.get(component)
    if not isinstance(schema, Mapping):
        return []
    required = set(schema.get("required") or [])
    properties = schema.get("properties") or {}
    fields = []
    for position, (name, prop) in enumerate(properties.items()):
        if not isinstance(prop, Mapping):
            continue
        f = _field(name, prop, name in required, defs)
        order = prop.get("x-order")
        # x-order can be missing (a cog 0.13 + pydantic 2 build dropped it): keep declaration
        # order, after any explicitly ordered inputs.
        f.order = order if isinstance(order, int) else 10_000 + position
        fields.append(f)
    fields.sort(key=lambda f: f.order)
    if len(fields) > ALWAYS_VISIBLE_UP_TO:
        for f in fields:
            textual = f.widget in (TEXT, TEXTAREA, FILE, FILES, PASSWORD, LIST)
            f.advanced = not f.required and (f.deprecated or not textual)
    else:
        for f in fields:
            f.advanced = f.deprecated and not f.required
    return fields


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def value_text(f: Field, value: Any) -> str:
    """How a value appears in its form control (inverse of :func:`parse_submission`)."""
    if f.widget == JSON:
        return json.dumps(value, indent=2)
    return _scalar_text(value)


class Submission(dict[str, Any]):
    """Typed input values parsed from a form, plus the errors of values that did not parse."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}


def _parse_scalar(kind: str, raw: str) -> Any:
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            number = float(raw)
            if not number.is_integer():
                raise ValueError("Enter a whole number.") from None
            return int(number)
    if kind == "number":
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError("Enter a finite number.")
        return int(number) if number.is_integer() and "." not in raw else number
    return raw


def parse_submission(fields: Sequence[Field], data: Mapping[str, Sequence[str]]) -> Submission:
    """Form strings (``name → list of posted values``) → input values for ``validate_input``.

    Empty optional fields are left out so the model's defaults apply, and so are values equal to
    the default: a prediction records what the person chose, and defaults can evolve. File fields
    are handled by the caller (they need storage) and are skipped here.
    """
    out = Submission()
    for f in fields:
        values = [v for v in data.get(f.name, []) if isinstance(v, str)]
        raw = values[0].strip() if values and f.widget != TEXTAREA else (values or [""])[0]
        try:
            if f.widget in (FILE, FILES):
                continue
            if f.widget == CHECKBOX:
                value: Any = raw.lower() in ("on", "true", "1")
            elif f.widget == LIST:
                items = [v.strip() for v in values if v.strip()]
                if not items:
                    continue
                value = [_parse_scalar(f.item_type, item) for item in items]
            elif raw == "":
                continue
            elif f.widget == SELECT:
                by_text = {_scalar_text(choice): choice for choice in f.choices}
                value = by_text.get(raw, raw)
            elif f.widget == JSON:
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"Enter valid JSON ({exc.msg}).") from None
                except RecursionError:
                    raise ValueError("Enter JSON that is not nested so deeply.") from None
                if (problem := jsonsafe.find_problem(value)) is not None:
                    raise ValueError(f"Enter valid JSON: {problem.description}.")
            elif f.type in ("integer", "number"):
                try:
                    value = _parse_scalar(f.type, raw)
                except ValueError as exc:
                    message = str(exc) if str(exc).startswith("Enter") else "Enter a number."
                    raise ValueError(message) from None
            else:
                value = raw
        except ValueError as exc:
            out.errors[f.name] = str(exc)
            continue
        if f.has_default and value == f.default and not f.required and f.widget != PASSWORD:
            continue
        out[f.name] = value
    return out


@dataclass
class OutputSpec:
    kind: str  # file | files | concatenate | strings | text | value | object | json
    iterator: bool = False
    properties: dict[str, OutputSpec] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "iterator": self.iterator,
            "properties": {k: v.as_dict() for k, v in self.properties.items()},
        }


def _output(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> OutputSpec:
    schema = _resolve(schema, defs)
    kind = _type_of(schema)
    if kind == "string":
        return OutputSpec("file" if schema.get("format") == "uri" else "text")
    if kind in ("integer", "number", "boolean"):
        return OutputSpec("value")
    if kind == "array":
        items = _resolve(schema.get("items") or {}, defs)
        iterator = schema.get("x-cog-array-type") == "iterator"
        if _type_of(items) == "string" and items.get("format") == "uri":
            return OutputSpec("files", iterator)
        if _type_of(items) == "string":
            concatenate = schema.get("x-cog-array-display") == "concatenate"
            return OutputSpec("concatenate" if concatenate else "strings", iterator)
        return OutputSpec("json", iterator)
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        return OutputSpec(
            "object",
            properties={
                name: _output(sub, defs)
                for name, sub in schema["properties"].items()
                if isinstance(sub, Mapping)
            },
        )
    return OutputSpec("json")


def output_spec(openapi: Mapping[str, Any], component: str = "Output") -> OutputSpec:
    """How to render a version's output (cog-contract §6.2)."""
    defs = components(dict(openapi))
    schema = defs.get(component)
    return _output(schema, defs) if isinstance(schema, Mapping) else OutputSpec("json")
